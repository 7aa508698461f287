// Modal dialogs on the native <dialog> element: it keeps focus inside while open and closes on
// Escape; this module puts focus on the first field (or the safe button) when it opens and
// gives it back to the element that opened it when it closes.

import { h, replace } from './dom.js';
import { problemView, ApiError } from './api.js';

let seq = 0;

/**
 * Keeps Tab inside dlg: from its last control to its first, and Shift+Tab the other way.
 * (A modal <dialog> makes the page behind it inert, but Tab would still leave for the
 * browser's own controls.)
 */
export function trapFocus(dlg) {
  dlg.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Tab') return;
    const els = [...dlg.querySelectorAll('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')]
      .filter((el) => !el.disabled && el.getClientRects().length);
    if (!els.length) return;
    const first = els[0];
    const last = els[els.length - 1];
    if (ev.shiftKey && document.activeElement === first) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && document.activeElement === last) {
      ev.preventDefault();
      first.focus();
    }
  });
}

/**
 * Opens a form dialog and resolves with what submit() returned, or null when cancelled.
 *   title:   the heading (also the dialog's accessible name)
 *   body:    nodes inside the form (fields, explanations)
 *   submitLabel, danger: the confirm button's text and whether it is destructive
 *   submit(form): async; its result closes the dialog; an error thrown keeps it open and is
 *           shown as the API stated it
 *   focus:   'first' (default: the first field) or 'cancel' (for destructive confirmations)
 */
export function formDialog({ title, body, submitLabel = 'OK', danger = false, submit, focus = 'first', id }) {
  const titleId = `dlg-title-${++seq}`;
  const problem = h('div', { class: 'problem-slot', 'aria-live': 'assertive' });
  const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
  const ok = h('button', { type: 'submit', class: `btn ${danger ? 'danger' : 'primary'}` }, submitLabel);
  const form = h('form', { class: 'dialog-body', novalidate: true },
    h('h2', { id: titleId }, title), body, problem, h('div', { class: 'actions' }, cancel, ok));
  const dlg = h('dialog', { 'aria-labelledby': titleId, id }, form);
  trapFocus(dlg);
  const opener = document.activeElement;
  document.body.append(dlg);

  return new Promise((resolve) => {
    let result = null;
    const finish = () => {
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      else document.getElementById('main')?.focus();
      resolve(result);
    };
    dlg.addEventListener('close', finish, { once: true });
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      ok.disabled = true;
      cancel.disabled = true;
      const label = ok.textContent;
      ok.textContent = 'Working…';
      replace(problem);
      try {
        result = await submit(form);
        if (result === undefined) result = true;
        dlg.close();
      } catch (e) {
        replace(problem, e?.problem ? problemView(e) : problemView({ title: 'Error', detail: String(e?.message ?? e) }));
        ok.disabled = false;
        cancel.disabled = false;
        ok.textContent = label;
        // A field the problem names has the focus already (its error is next to it).
        if (!e?.fieldFocused) ok.focus();
      }
    });
    dlg.showModal();
    const first = focus === 'cancel' ? cancel
      : form.querySelector('input:not([type=hidden]):not([disabled]), select, textarea') ?? ok;
    first.focus();
  });
}

/** A labelled text field: returns [label, input, hint]. */
export function textField(name, labelText, attrs = {}, hint) {
  const id = `f-${name}-${++seq}`;
  const hintId = hint ? `${id}-hint` : null;
  return [
    h('label', { for: id }, labelText),
    h('input', { type: 'text', id, name, 'aria-describedby': hintId, ...attrs }),
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
  ];
}

/**
 * A labelled field with a place for its own error: returns {nodes, input, error}. The error
 * paragraph is named by the input's aria-describedby, so that a screen reader reads it too.
 */
export function field(name, labelText, attrs = {}, hint) {
  const id = `f-${name}-${++seq}`;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const error = h('p', { class: 'field-error', id: `${id}-error`, 'data-error-for': name });
  const input = h('input', { type: 'text', id, name, 'aria-describedby': [hintEl ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' '),
    'aria-invalid': 'false', ...attrs });
  return { nodes: [h('label', { for: id }, labelText), input, hintEl, error], input, error };
}

/**
 * Runs call() (a dialog's request) with form's field errors cleared first, and the API's
 * field errors placed next to their fields when it fails; the error is thrown on.
 */
export async function withFieldErrors(form, call) {
  showFieldErrors(form, null);
  try {
    return await call();
  } catch (e) {
    showFieldErrors(form, e);
    throw e;
  }
}

/**
 * Puts the problem's field errors (errors[].pointer "/name" or parameter) next to the fields
 * of form that carry those names; clears the others. Returns true when one was placed.
 */
export function showFieldErrors(form, err) {
  for (const el of form.querySelectorAll('[data-error-for]')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.setAttribute('aria-invalid', 'false');
  const errors = err instanceof ApiError ? (err.problem.errors ?? []) : [];
  let placed = false;
  for (const e of errors) {
    const name = (e.pointer ?? e.parameter ?? '').replace(/^\//, '').split('/')[0];
    const slot = name ? form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) : null;
    if (!slot) continue;
    slot.textContent = `${name}: ${e.detail ?? err.problem.detail ?? 'not valid'}`;
    form.elements.namedItem(name)?.setAttribute?.('aria-invalid', 'true');
    if (!placed) form.elements.namedItem(name)?.focus?.();
    placed = true;
  }
  if (placed) err.fieldFocused = true;
  return placed;
}

/** A fieldset of radio buttons: options are [value, label, {disabled, hint}]. */
export function radioGroup(name, legend, options, checked) {
  return h('fieldset', null, h('legend', null, legend),
    options.map(([value, label, extra = {}]) => h('label', null,
      h('input', { type: 'radio', name, value, checked: value === checked, disabled: extra.disabled }),
      h('span', null, label, extra.hint ? h('span', { class: 'hint' }, ` — ${extra.hint}`) : null))));
}

/** A labelled select: options are [value, label]. */
export function selectField(name, labelText, options, selected) {
  const id = `f-${name}-${++seq}`;
  return [
    h('label', { for: id }, labelText),
    h('select', { id, name },
      options.map(([v, l]) => h('option', { value: v, selected: v === selected }, l))),
  ];
}
