// Policy schedules in the browser: the 5-field cron expressions (UTC) the daemon takes, read by
// the same rules as conf/policy.c (Kubernetes CronJob's reading): lists, ranges, steps, `*`
// and `?`, JAN-DEC and SUN-SAT, 7 for Sunday; when both day fields are restricted a day
// matches if either does (a field that starts with `*` or `?` is unrestricted); the macros
// @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually. The policy form uses it to
// show the next runs while the schedule is typed; the daemon still has the last word.

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const MACROS = {
  '@hourly': '0 * * * *', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *', '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *',
};

const DAY_MS = 86400000;
const SEARCH_DAYS = 9 * 366;

/** The error of a schedule that cannot be read: its message says what is wrong, as the daemon does. */
export class CronError extends Error {}

/** A number or a name of field f; throws 'range' or 'value' as a string. */
function readValue(f, s) {
  let v;
  if (/^[0-9]+$/.test(s)) {
    if (s.length > 4) throw 'value';
    v = Number(s);
  } else {
    const i = s.length === 3 && f.names ? f.names.indexOf(s.toLowerCase()) : -1;
    if (i < 0) throw 'value';
    v = f.min + i;
  }
  if (v < f.min || v > f.max) throw 'range';
  return v;
}

/** One comma item of field f into the set bits. */
function readItem(f, s, bits) {
  const slash = s.indexOf('/');
  const range = slash >= 0 ? s.slice(0, slash) : s;
  let lo = f.min;
  let hi = f.max;
  let step = 1;
  if (slash >= 0) {
    try {
      step = readValue({ min: 1, max: 1000 }, s.slice(slash + 1));
    } catch {
      throw 'value';
    }
  }
  if (range !== '*' && range !== '?') {
    const dash = range.indexOf('-');
    if (dash >= 0) {
      lo = readValue(f, range.slice(0, dash));
      hi = readValue(f, range.slice(dash + 1));
      if (lo > hi) throw 'down';
    } else {
      lo = readValue(f, range);
      hi = slash >= 0 ? f.max : lo;
    }
  }
  for (let v = lo; v <= hi; v += step) bits.add(v);
}

function readField(f, text) {
  const bits = new Set();
  const items = text.split(',');
  items.forEach((item, i) => {
    if (item === '' && i === items.length - 1 && i > 0) throw new CronError(`${f.name}: ends with a comma`);
    try {
      readItem(f, item, bits);
    } catch (e) {
      if (e === 'range') throw new CronError(`${f.name}: values run from ${f.min} to ${f.max}`);
      if (e === 'down') throw new CronError(`${f.name}: a range must run upwards`);
      throw new CronError(`${f.name}: '${item}' is not a value, range or step`);
    }
  });
  return { bits, star: text[0] === '*' || text[0] === '?' };
}

function daysInMonth(mon, leap) {
  return mon === 2 && leap ? 29 : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mon - 1];
}

/**
 * Reads a cron expression (or a macro) into {minutes, hours, doms, months, dows: Set,
 * domStar, dowStar}. Throws CronError with the daemon's wording when it cannot be read or
 * never fires.
 */
export function parseCron(text) {
  const t = String(text ?? '');
  if (!t) throw new CronError('must be a cron expression');
  if (t.length > 127) throw new CronError('must be at most 127 characters');
  if (t[0] === '@') {
    const m = MACROS[t.toLowerCase()];
    if (!m) throw new CronError(`'${t}' is not one of @hourly, @daily, @weekly, @monthly, @yearly`);
    return parseCron(m);
  }
  const parts = t.split(/[ \t]+/).filter(Boolean);
  if (parts.length !== 5) throw new CronError('must have 5 fields: minute hour day-of-month month day-of-week');
  const f = parts.map((p, i) => readField(FIELDS[i], p));
  const dows = new Set([...f[4].bits].map((d) => d % 7)); // 7 is Sunday
  const c = { minutes: f[0].bits, hours: f[1].bits, doms: f[2].bits, months: f[3].bits, dows,
    domStar: f[2].star, dowStar: f[4].star };
  if (c.domStar || c.dowStar) {
    let some = false;
    for (const m of c.months) for (const d of c.doms) if (d <= daysInMonth(m, true)) some = true;
    if (!some) throw new CronError('never fires: no chosen month has the chosen day of month');
  }
  return c;
}

function dayMatches(c, date) {
  if (!c.months.has(date.getUTCMonth() + 1)) return false;
  const dom = c.doms.has(date.getUTCDate());
  const dow = c.dows.has(date.getUTCDay());
  return c.domStar || c.dowStar ? dom && dow : dom || dow;
}

/** The first time (ms since the epoch, a whole minute) strictly after afterMs that c fires, or null. */
export function cronNext(c, afterMs) {
  const t = Math.floor(afterMs / 60000) * 60000 + 60000;
  const day0 = t - (t % DAY_MS);
  const startH = Math.floor((t % DAY_MS) / 3600000);
  const startM = Math.floor((t % 3600000) / 60000);
  const hours = [...c.hours].sort((a, b) => a - b);
  const minutes = [...c.minutes].sort((a, b) => a - b);
  for (let d = 0; d < SEARCH_DAYS; d++) {
    const day = day0 + d * DAY_MS;
    if (!dayMatches(c, new Date(day))) continue;
    for (const hr of hours) {
      if (d === 0 && hr < startH) continue;
      for (const mi of minutes) {
        if (d === 0 && hr === startH && mi < startM) continue;
        return day + hr * 3600000 + mi * 60000;
      }
    }
  }
  return null;
}

/**
 * The next count run times (ms) of a policy schedule after now: a cron string, or
 * {interval_seconds: N} (a first run at once, then every N seconds). Throws CronError.
 */
export function nextRuns(schedule, count = 5, now = Date.now()) {
  if (schedule && typeof schedule === 'object') {
    const n = schedule.interval_seconds;
    if (!Number.isInteger(n) || n < 1 || n > 31622400) {
      throw new CronError('interval_seconds must be a whole number from 1 to 31622400');
    }
    return Array.from({ length: count }, (_, i) => now + i * n * 1000);
  }
  const c = parseCron(schedule);
  const out = [];
  let t = now;
  while (out.length < count) {
    const next = cronNext(c, t);
    if (next === null) break;
    out.push(next);
    t = next;
  }
  if (!out.length) throw new CronError('never fires');
  return out;
}
