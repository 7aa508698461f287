/*
 * The shared libvirt connection: event loop thread, keepalive, reconnect
 * with backoff, error mapping.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "err.h"
#include "log.h"
#include "virt_priv.h"

#define BACKOFF_MIN_MS       250
#define BACKOFF_MAX_MS       5000
#define KEEPALIVE_INTERVAL_S 2
#define KEEPALIVE_COUNT      3

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char *uri;
    virConnectPtr conn;   /* NULL while disconnected */
    virConnectPtr stale;  /* a lost connection waiting to be closed */
    char driver[32];      /* driver name of conn */
    int backup_supported; /* -1 unknown, 0 no, 1 yes (for conn) */
    int cb_ids[2];        /* domain event callback ids on conn */
    bool stop;
    pthread_t event_thread, reconnect_thread;
    bool threads_started;
    virt_event_fn handler;
    void *handler_opaque;
} vc = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .backup_supported = -1,
    .cb_ids = {-1, -1},
};

static atomic_bool event_loop_stop;

struct errmap {
    int code;
    int err;
};

/* libvirt error code -> errno; the one mapping (see err.h for their meaning). */
static const struct errmap virt_errmap[] = {
    {VIR_ERR_NO_DOMAIN, -ENOENT},
    {VIR_ERR_NO_DOMAIN_SNAPSHOT, -ENOENT},
    {VIR_ERR_NO_DOMAIN_CHECKPOINT, -ENOENT},
    {VIR_ERR_NO_DOMAIN_BACKUP, -ENOENT},
    {VIR_ERR_NO_DOMAIN_METADATA, -ENOENT},
    {VIR_ERR_DEVICE_MISSING, -ENOENT},
    {VIR_ERR_NO_SUPPORT, -EOPNOTSUPP},
    {VIR_ERR_OPERATION_UNSUPPORTED, -EOPNOTSUPP},
    {VIR_ERR_ARGUMENT_UNSUPPORTED, -EOPNOTSUPP},
    {VIR_ERR_CONFIG_UNSUPPORTED, -EOPNOTSUPP},
    {VIR_ERR_INVALID_ARG, -EINVAL},
    {VIR_ERR_XML_ERROR, -EINVAL},
    {VIR_ERR_XML_DETAIL, -EINVAL},
    {VIR_ERR_XML_INVALID_SCHEMA, -EINVAL},
    {VIR_ERR_INVALID_DOMAIN_SNAPSHOT, -EINVAL},
    {VIR_ERR_INVALID_DOMAIN_CHECKPOINT, -EINVAL},
    {VIR_ERR_DOM_EXIST, -EEXIST},
    {VIR_ERR_OPERATION_INVALID, -EBADFD},
    {VIR_ERR_CHECKPOINT_INCONSISTENT, -EBADFD},
    {VIR_ERR_SNAPSHOT_REVERT_RISKY, -EBADFD},
    {VIR_ERR_RESOURCE_BUSY, -EBUSY},
    {VIR_ERR_BLOCK_COPY_ACTIVE, -EBUSY},
    {VIR_ERR_OPERATION_DENIED, -EACCES},
    {VIR_ERR_ACCESS_DENIED, -EACCES},
    {VIR_ERR_AUTH_FAILED, -EACCES},
    {VIR_ERR_OPERATION_TIMEOUT, -ETIMEDOUT},
    {VIR_ERR_AGENT_UNRESPONSIVE, -ETIMEDOUT},
    {VIR_ERR_AGENT_UNSYNCED, -ETIMEDOUT},
    {VIR_ERR_OPERATION_ABORTED, -ECANCELED},
    {VIR_ERR_NO_CONNECT, -ENOTCONN},
    {VIR_ERR_INVALID_CONN, -ENOTCONN},
    {VIR_ERR_AUTH_UNAVAILABLE, -ENOTCONN},
};

static void
mark_lost(virConnectPtr c)
{
    pthread_mutex_lock(&vc.lock);
    if (c && vc.conn == c) {
        vc.stale = vc.conn;
        vc.conn = NULL;
        log_warn("lost the connection to libvirt at %s; reconnecting", vc.uri);
        pthread_cond_broadcast(&vc.wake);
    }
    pthread_mutex_unlock(&vc.lock);
}

int
virt_error(const char *what)
{
    virErrorPtr last = virGetLastError();
    char msg[768];
    int code, domain, err = -EIO;

    if (!last)
        return err_set(-EIO, "%s: libvirt failed without saying why", what);
    /* Any later libvirt call resets the last error: keep what is needed. */
    code = last->code;
    domain = last->domain;
    snprintf(msg, sizeof(msg), "%s", last->message ? last->message : "unknown libvirt error");

    if (domain == VIR_FROM_RPC || domain == VIR_FROM_REMOTE || code == VIR_ERR_RPC ||
        code == VIR_ERR_NO_CONNECT || code == VIR_ERR_INVALID_CONN) {
        virConnectPtr dead = NULL;
        bool lost;

        pthread_mutex_lock(&vc.lock);
        lost = !vc.conn || virConnectIsAlive(vc.conn) != 1;
        if (lost)
            dead = vc.conn;
        pthread_mutex_unlock(&vc.lock);
        virResetLastError();
        if (lost) {
            mark_lost(dead);
            return err_set(-ENOTCONN, "%s: libvirt is not reachable: %s", what, msg);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(virt_errmap); i++) {
        if (virt_errmap[i].code == code) {
            err = virt_errmap[i].err;
            break;
        }
    }
    return err_set(err, "%s: %s", what, msg);
}

static void
silence_libvirt(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void
on_close(virConnectPtr c, int reason, void *opaque)
{
    static const char *const why[] = {"error", "end of file", "keepalive timeout",
                                      "client request"};
    (void)opaque;
    log_debug("libvirt connection closed (%s)",
              reason >= 0 && reason < (int)ARRAY_SIZE(why) ? why[reason] : "unknown");
    mark_lost(c);
}

/* Changes with every domain event and every new connection (virt_events_epoch). */
static atomic_uint_fast64_t events_epoch = 1;

uint64_t
virt_events_epoch(void)
{
    return atomic_load(&events_epoch);
}

static void
deliver(enum conf_event_kind kind, virDomainPtr dom)
{
    char uuid[VIR_UUID_STRING_BUFLEN] = "";
    struct conf_event ev = {.kind = kind};
    virt_event_fn fn;
    void *opaque;

    atomic_fetch_add(&events_epoch, 1); /* names and UUIDs may mean other domains now */
    if (dom) {
        ev.domain = virDomainGetName(dom);
        if (virDomainGetUUIDString(dom, uuid) == 0)
            ev.uuid = uuid;
    }
    pthread_mutex_lock(&vc.lock);
    fn = vc.handler;
    opaque = vc.handler_opaque;
    pthread_mutex_unlock(&vc.lock);
    if (fn)
        fn(&ev, opaque);
}

static int
on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *opaque)
{
    enum conf_event_kind kind;
    (void)c;
    (void)detail;
    (void)opaque;

    switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED:
        kind = CONF_EVENT_DEFINED;
        break;
    case VIR_DOMAIN_EVENT_UNDEFINED:
        kind = CONF_EVENT_UNDEFINED;
        break;
    case VIR_DOMAIN_EVENT_STARTED:
        kind = CONF_EVENT_STARTED;
        break;
    case VIR_DOMAIN_EVENT_STOPPED:
        kind = CONF_EVENT_STOPPED;
        break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
        kind = CONF_EVENT_SUSPENDED;
        break;
    case VIR_DOMAIN_EVENT_RESUMED:
        kind = CONF_EVENT_RESUMED;
        break;
    default:
        kind = CONF_EVENT_OTHER;
    }
    deliver(kind, dom);
    return 0;
}

static void
on_job_completed(virConnectPtr c, virDomainPtr dom, virTypedParameterPtr params, int nparams,
                 void *opaque)
{
    (void)c;
    (void)params;
    (void)nparams;
    (void)opaque;
    deliver(CONF_EVENT_JOB_COMPLETED, dom);
}

static void
register_events(virConnectPtr c)
{
    vc.cb_ids[0] =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL);
    vc.cb_ids[1] =
        virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_job_completed), NULL, NULL);
    if (vc.cb_ids[0] < 0 || vc.cb_ids[1] < 0)
        log_debug("domain events are not (all) available on this connection");
}

/* Opens a connection; on success installs it. Returns 0 or a negative errno. */
static int
try_connect(void)
{
    virConnectPtr c = virConnectOpen(vc.uri);
    const char *type;

    if (!c)
        return virt_error("connect");
    /* Remote drivers only: the embedded test driver has no keepalive. */
    if (virConnectSetKeepAlive(c, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
        virResetLastError();
    if (virConnectRegisterCloseCallback(c, on_close, NULL, NULL) < 0)
        virResetLastError();
    type = virConnectGetType(c);

    pthread_mutex_lock(&vc.lock);
    vc.conn = c;
    snprintf(vc.driver, sizeof(vc.driver), "%s", type ? type : "unknown");
    vc.backup_supported = -1;
    register_events(c);
    pthread_mutex_unlock(&vc.lock);
    log_info("connected to libvirt at %s (driver %s)", vc.uri, type ? type : "unknown");
    deliver(CONF_EVENT_CONNECTED, NULL);
    return 0;
}

static void
drop_stale(void)
{
    virConnectPtr old;

    pthread_mutex_lock(&vc.lock);
    old = TAKE_PTR(vc.stale);
    pthread_mutex_unlock(&vc.lock);
    if (old) {
        virConnectUnregisterCloseCallback(old, on_close);
        virConnectClose(old);
        virResetLastError();
    }
}

static void *
reconnect_main(void *arg)
{
    int backoff = BACKOFF_MIN_MS;
    unsigned failures = 0;
    (void)arg;

    for (;;) {
        pthread_mutex_lock(&vc.lock);
        while (!vc.stop && vc.conn && !vc.stale)
            pthread_cond_wait(&vc.wake, &vc.lock);
        bool stop = vc.stop;
        bool need = vc.conn == NULL;
        pthread_mutex_unlock(&vc.lock);
        if (stop)
            break;
        drop_stale();
        if (!need)
            continue;
        if (try_connect() == 0) {
            backoff = BACKOFF_MIN_MS;
            failures = 0;
            continue;
        }
        if (failures++ % 20 == 0)
            log_warn("cannot reach libvirt at %s: %s (retrying)", vc.uri,
                     err_detail() ? err_detail() : "unknown error");
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += backoff / 1000;
        until.tv_nsec += (long)(backoff % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&vc.lock);
        if (!vc.stop)
            pthread_cond_timedwait(&vc.wake, &vc.lock, &until);
        pthread_mutex_unlock(&vc.lock);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

static void *
event_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&event_loop_stop)) {
        if (virEventRunDefaultImpl() < 0)
            virResetLastError();
    }
    return NULL;
}

static void
wake_event_loop(int timer, void *opaque)
{
    (void)opaque;
    virEventRemoveTimeout(timer);
}

int
virt_open(const char *uri)
{
    virSetErrorFunc(NULL, silence_libvirt);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
        return virt_error("initialise libvirt");
    vc.uri = strdup(uri);
    if (!vc.uri)
        return -ENOMEM;
    if (try_connect() < 0)
        log_warn("cannot reach libvirt at %s yet: %s (retrying in the background)", uri,
                 err_detail() ? err_detail() : "unknown error");
    if (pthread_create(&vc.event_thread, NULL, event_main, NULL) != 0)
        return err_set(-EAGAIN, "cannot start the libvirt event thread");
    if (pthread_create(&vc.reconnect_thread, NULL, reconnect_main, NULL) != 0)
        return err_set(-EAGAIN, "cannot start the libvirt reconnect thread");
    vc.threads_started = true;
    return 0;
}

void
virt_close(void)
{
    virConnectPtr c;

    if (vc.threads_started) {
        pthread_mutex_lock(&vc.lock);
        vc.stop = true;
        pthread_cond_broadcast(&vc.wake);
        pthread_mutex_unlock(&vc.lock);
        pthread_join(vc.reconnect_thread, NULL);
    }
    drop_stale();
    pthread_mutex_lock(&vc.lock);
    c = TAKE_PTR(vc.conn);
    pthread_mutex_unlock(&vc.lock);
    if (c) {
        for (size_t i = 0; i < ARRAY_SIZE(vc.cb_ids); i++)
            if (vc.cb_ids[i] >= 0)
                virConnectDomainEventDeregisterAny(c, vc.cb_ids[i]);
        virConnectUnregisterCloseCallback(c, on_close);
        virConnectClose(c);
    }
    if (vc.threads_started) {
        atomic_store(&event_loop_stop, true);
        virEventAddTimeout(0, wake_event_loop, NULL, NULL);
        pthread_join(vc.event_thread, NULL);
        vc.threads_started = false;
    }
    free(TAKE_PTR(vc.uri));
}

void
virt_set_event_handler(virt_event_fn fn, void *opaque)
{
    pthread_mutex_lock(&vc.lock);
    vc.handler = fn;
    vc.handler_opaque = opaque;
    pthread_mutex_unlock(&vc.lock);
}

bool
virt_connected(void)
{
    bool up;

    pthread_mutex_lock(&vc.lock);
    up = vc.conn != NULL;
    pthread_mutex_unlock(&vc.lock);
    return up;
}

const char *
virt_uri(void)
{
    return vc.uri ? vc.uri : "";
}

int
virt_conn_get(virConnectPtr *ret)
{
    int r = 0;

    pthread_mutex_lock(&vc.lock);
    if (vc.conn) {
        virConnectRef(vc.conn);
        *ret = vc.conn;
    } else {
        r = err_set(-ENOTCONN, "libvirt at %s is not reachable right now; retrying",
                    vc.uri ? vc.uri : "(none)");
    }
    pthread_mutex_unlock(&vc.lock);
    return r;
}

const char *
virt_driver_name(virConnectPtr conn)
{
    (void)conn;
    return vc.driver;
}

bool
virt_backup_supported(virConnectPtr conn)
{
    int known;

    pthread_mutex_lock(&vc.lock);
    known = vc.backup_supported;
    pthread_mutex_unlock(&vc.lock);
    if (known >= 0)
        return known;

    _cleanup_free_ char *caps = virConnectGetDomainCapabilities(conn, NULL, NULL, NULL, NULL, 0);
    if (!caps) {
        virResetLastError();
        known = 0;
    } else {
        known = strstr(caps, "<backup supported='yes'/>") != NULL;
    }
    pthread_mutex_lock(&vc.lock);
    if (vc.conn == conn)
        vc.backup_supported = known;
    pthread_mutex_unlock(&vc.lock);
    return known;
}

int
virt_versions_get(struct conf_versions *ret)
{
    _cleanup_conn_ virConnectPtr conn = NULL;
    struct conf_versions v = {0};
    unsigned long lib = 0, hv = 0;
    char *uri;
    int r;

    if (virGetVersion(&lib, NULL, NULL) == 0)
        snprintf(v.library, sizeof(v.library), "%lu.%lu.%lu", lib / 1000000, lib / 1000 % 1000,
                 lib % 1000);
    r = virt_conn_get(&conn);
    if (r < 0)
        return r;
    snprintf(v.driver, sizeof(v.driver), "%s", virt_driver_name(conn));
    if (virConnectGetVersion(conn, &hv) == 0 && hv > 0)
        snprintf(v.hypervisor, sizeof(v.hypervisor), "%lu.%lu.%lu", hv / 1000000, hv / 1000 % 1000,
                 hv % 1000);
    else
        virResetLastError();
    uri = virConnectGetURI(conn);
    if (!uri)
        return virt_error("query the connection URI");
    snprintf(v.uri, sizeof(v.uri), "%s", uri);
    free(uri);
    *ret = v;
    return 0;
}
