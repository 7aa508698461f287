/* Unit tests: command line and environment parsing. */
#include <errno.h>
#include <string.h>

#include "server/options.h"
#include "tap.h"

static const char *env_vars[8][2];

static const char *
fake_env(const char *name)
{
    for (size_t i = 0; i < 8 && env_vars[i][0]; i++)
        if (strcmp(env_vars[i][0], name) == 0)
            return env_vars[i][1];
    return NULL;
}

static const struct {
    const char *args[6];
    int ok;
    const char *listen;   /* expected when ok */
    const char *err_part; /* expected in the message when not ok */
} cases[] = {
    {{NULL}, 1, "127.0.0.1:8080", NULL},
    {{"--listen", "0.0.0.0:9000"}, 1, "0.0.0.0:9000", NULL},
    {{"--listen=[::1]:8081"}, 1, "[::1]:8081", NULL},
    {{"--listen", "localhost:0"}, 1, "localhost:0", NULL},
    {{"--listen", "8080"}, 0, NULL, "not HOST:PORT"},
    {{"--listen", "unix:/run/vv.sock"}, 1, "unix:/run/vv.sock", NULL},
    {{"--listen", "unix:vv.sock"}, 0, NULL, "unix:/ABSOLUTE/PATH"},
    {{"--no-auth", "--token-file", "t"}, 0, NULL, "exclude each other"},
    {{"--allowed-hosts", "a b"}, 0, NULL, "host names"},
    {{"--listen", "host:99999"}, 0, NULL, "not HOST:PORT"},
    {{"--listen", "host:"}, 0, NULL, "not HOST:PORT"},
    {{"--listen"}, 0, NULL, "missing value"},
    {{"--bogus"}, 0, NULL, "unknown option"},
    {{"-x"}, 0, NULL, "unknown option"},
    {{"extra"}, 0, NULL, "unexpected argument"},
    {{"--log-level", "loud"}, 0, NULL, "debug, info, warn, error"},
    {{"--log-level", "debug"}, 1, "127.0.0.1:8080", NULL},
    {{"--log-format", "xml"}, 0, NULL, "text, json"},
    {{"--threads", "0"}, 0, NULL, "from 1 to 256"},
    {{"--threads", "-3"}, 0, NULL, "from 1 to 256"},
    {{"--threads", "4x"}, 0, NULL, "from 1 to 256"},
    {{"--max-body", "10"}, 0, NULL, "1024"},
    {{"--reconcile-max-age", "0"}, 1, "127.0.0.1:8080", NULL},
    {{"--reconcile-max-age", "86401"}, 0, NULL, "from 0 to 86400"},
    {{"--reconcile-max-age", "-1"}, 0, NULL, "from 0 to 86400"},
    {{"--max-policy-jobs", "1"}, 1, "127.0.0.1:8080", NULL},
    {{"--max-policy-jobs", "0"}, 0, NULL, "from 1 to 64"},
    {{"--max-policy-jobs", "65"}, 0, NULL, "from 1 to 64"},
    {{"--tls-cert", "c.pem"}, 0, NULL, "go together"},
    {{"--db", ""}, 0, NULL, "empty value"},
    {{"\n"}, 0, NULL, "?: unexpected argument"},
    {{"--listen", "a\nb:1"}, 0, NULL, "'a?b:1'"},
};

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[8] = {(char *)"virtvaultd"};
        int argc = 1;
        struct options o;
        enum options_action action;
        char err[256] = "";

        for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        int r = options_parse(argc, argv, fake_env, &o, &action, err, sizeof(err));
        if (cases[i].ok) {
            ok(r == 0 && strcmp(o.listen, cases[i].listen) == 0, "case %zu: %s", i,
               r == 0 ? o.listen : err);
            if (r == 0)
                options_clear(&o);
        } else {
            ok(r == -EINVAL && strstr(err, cases[i].err_part) && !strchr(err, '\n'),
               "case %zu refused: %s", i, err);
        }
    }

    /* The environment sets, the command line wins. */
    env_vars[0][0] = "VIRTVAULT_LISTEN";
    env_vars[0][1] = "127.0.0.2:7000";
    env_vars[1][0] = "VIRTVAULT_LIBVIRT_URI";
    env_vars[1][1] = "qemu:///system";
    env_vars[2][0] = "VIRTVAULT_MAX_BODY";
    env_vars[2][1] = "2048";
    {
        char *argv[] = {(char *)"virtvaultd", (char *)"--listen", (char *)"127.0.0.3:7001"};
        struct options o;
        enum options_action action;
        char err[256] = "";
        int r = options_parse(3, argv, fake_env, &o, &action, err, sizeof(err));
        ok(r == 0 && strcmp(o.listen, "127.0.0.3:7001") == 0, "command line wins over env");
        ok(r == 0 && strcmp(o.libvirt_uri, "qemu:///system") == 0, "env sets the URI");
        ok(r == 0 && o.max_body == 2048, "env sets the body cap");
        if (r == 0)
            options_clear(&o);
    }
    env_vars[2][1] = "lots";
    {
        char *argv[] = {(char *)"virtvaultd"};
        struct options o;
        enum options_action action;
        char err[256] = "";
        int r = options_parse(1, argv, fake_env, &o, &action, err, sizeof(err));
        ok(r == -EINVAL && strstr(err, "VIRTVAULT_MAX_BODY"), "bad env value named: %s", err);
    }
    env_vars[0][0] = NULL;

    /* --no-auth is a flag with a twin: VIRTVAULT_NO_AUTH=1/true/yes or 0/false/no. */
    static const struct {
        const char *value;
        int ok;
        bool no_auth;
    } flags[] = {{"1", 1, true},  {"yes", 1, true}, {"true", 1, true},
                 {"0", 1, false}, {"no", 1, false}, {"maybe", 0, false}};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char *argv[] = {(char *)"virtvaultd"};
        struct options o;
        enum options_action action;
        char err[256] = "";

        env_vars[0][0] = "VIRTVAULT_NO_AUTH";
        env_vars[0][1] = flags[i].value;
        env_vars[1][0] = NULL;
        int r = options_parse(1, argv, fake_env, &o, &action, err, sizeof(err));
        if (flags[i].ok)
            ok(r == 0 && o.no_auth == flags[i].no_auth, "VIRTVAULT_NO_AUTH=%s", flags[i].value);
        else
            ok(r == -EINVAL && strstr(err, "VIRTVAULT_NO_AUTH"), "refused: %s", err);
        if (r == 0)
            options_clear(&o);
    }
    env_vars[0][0] = NULL;
    {
        char *argv[] = {(char *)"virtvaultd", (char *)"--help"};
        struct options o;
        enum options_action action = OPTIONS_RUN;
        char err[256] = "";
        int r = options_parse(2, argv, NULL, &o, &action, err, sizeof(err));
        ok(r == 0 && action == OPTIONS_HELP, "--help");
        if (r == 0)
            options_clear(&o);
        char *argv2[] = {(char *)"virtvaultd", (char *)"--version"};
        r = options_parse(2, argv2, NULL, &o, &action, err, sizeof(err));
        ok(r == 0 && action == OPTIONS_VERSION, "--version");
        if (r == 0)
            options_clear(&o);
    }
    return tap_done();
}
