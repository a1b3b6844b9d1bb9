/* Shared plumbing of the commands: dispatch, JSONL input, atomic output, JSON strings. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "cli.h"

int sr_cli_dispatch(const SrCommand *cmd, int argc, char **argv) {
    SrConfig cfg = {0};
    SrError err = {{0}};
    int want_help = 0;
    /* "splitreason export CKPT --out DIR": a leading bare argument is --<positional> CKPT */
    char **args = argv, flag[128];
    int nargs = argc;
    if (cmd->positional && argc > 0 && strncmp(argv[0], "--", 2) != 0 && strcmp(argv[0], "-h") != 0) {
        args = sr_malloc(((size_t)argc + 1) * sizeof(char *));
        snprintf(flag, sizeof flag, "--%s", cmd->positional);
        args[0] = flag;
        memcpy(args + 1, argv, (size_t)argc * sizeof(char *));
        nargs = argc + 1;
    }
    int prc = sr_config_parse(&cfg, cmd->opts, cmd->n_opts, nargs, args, &want_help, &err);
    if (args != argv) free(args);
    if (!prc && !want_help && cmd->check) prc = cmd->check(&cfg, &err);
    if (prc) {
        fprintf(stderr, "splitreason %s: %s\n", cmd->name, err.msg);
        sr_config_free(&cfg);
        return 2;
    }
    if (want_help) {
        printf("usage: %s\n\n%s\n\noptions:\n", cmd->usage, cmd->description);
        sr_config_print_help(stdout, cmd->opts, cmd->n_opts);
        sr_config_free(&cfg);
        return 0;
    }
    sr_config_print(&cfg);
    int rc = cmd->run(&cfg, &err);
    if (rc) fprintf(stderr, "splitreason %s: %s\n", cmd->name, err.msg[0] ? err.msg : "failed");
    sr_config_free(&cfg);
    return rc ? 1 : 0;
}

int sr_cli_step(const char *who, const SrCommand *cmd, char **argv, int argc, SrError *err) {
    fprintf(stderr, "\n[splitreason] %s: splitreason %s", who, cmd->name);
    for (int i = 0; i < argc; i++) fprintf(stderr, argv[i][0] ? " %s" : " \"%s\"", argv[i]);
    fprintf(stderr, "\n");
    fflush(stdout);
    if (sr_cli_dispatch(cmd, argc, argv)) return sr_fail(err, "%s step '%s' failed", who, cmd->name);
    fflush(stdout);
    return 0;
}

int sr_out_open(SrOutFile *o, const char *path, SrError *err) {
    memset(o, 0, sizeof *o);
    o->af.fd = -1;
    o->af.reg = -1;
    if (!path || strcmp(path, "-") == 0) {
        o->f = stdout;
        return 0;
    }
    /* a device, a pipe or a process's descriptor (/dev/null, a fifo, /dev/stdout) is written
     * as it is (appending: /dev/stdout may be a file the shell opened), never replaced */
    struct stat sb;
    char *real = lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) ? realpath(path, NULL) : NULL;
    int special = (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode)) ||
                  (real && (!strncmp(real, "/proc/", 6) || !strncmp(real, "/dev/", 5)));
    free(real);
    if (special) {
        o->f = fopen(path, "ab");
        if (!o->f) return sr_fail(err, "%s: cannot open for writing (%s)", path, strerror(errno));
        o->direct = sr_strdup(path);
        return 0;
    }
    if (sr_atomic_open(&o->af, path, err)) return -1;
    /* the stream gets its own descriptor: fclose closes it, the commit fsyncs and closes af's */
    int fd = dup(o->af.fd);
    o->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!o->f) {
        sr_fail(err, "%s: cannot open a stream (%s)", path, strerror(errno));
        if (fd >= 0) close(fd);
        sr_atomic_abort(&o->af);
        memset(o, 0, sizeof *o);
        return -1;
    }
    return 0;
}

int sr_out_commit(SrOutFile *o, SrError *err) {
    int rc = 0;
    if (o->f == stdout) {
        if (fflush(stdout) != 0 || ferror(stdout)) rc = sr_fail(err, "stdout: write failed (%s)", strerror(errno));
    } else if (o->f) {
        int bad = fflush(o->f) != 0 || ferror(o->f);
        int e = errno;
        if (fclose(o->f) != 0 && !bad) bad = 1, e = errno;
        if (o->direct) {
            if (bad) rc = sr_fail(err, "%s: write failed (%s)", o->direct, strerror(e));
        } else if (bad) {
            rc = sr_fail(err, "%s: write failed (%s)", o->af.path, strerror(e));
            sr_atomic_abort(&o->af);
        } else {
            rc = sr_atomic_commit(&o->af, err);
        }
    }
    free(o->direct);
    memset(o, 0, sizeof *o);
    return rc;
}

void sr_out_abort(SrOutFile *o) {
    if (o->f && o->f != stdout) {
        fclose(o->f);
        if (!o->direct) sr_atomic_abort(&o->af);
    }
    free(o->direct);
    memset(o, 0, sizeof *o);
}

void sr_json_write_string(FILE *f, const char *s, size_t n) {
    SrBuf b = {0};
    sr_buf_json_string(&b, s, n);
    fwrite(b.p, 1, b.n, f);
    sr_buf_free(&b);
}
