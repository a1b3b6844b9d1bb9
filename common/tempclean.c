/*
 * Temp paths that must not outlive the process (see fileio.h):
 *
 *   - a registry of the live temp files and temp directories (SrAtomicFile, SrAtomicDir), and
 *     a SIGINT / SIGTERM / SIGHUP handler that removes them and re-raises the signal, so the
 *     process still dies of it (exit status 128 + signal, as the shell expects);
 *   - the sweep of what a process that could not clean up (SIGKILL, a crash, a power cut)
 *     left: our temp names carry the writer's pid, and a name is removed only when it matches
 *     our patterns exactly and that pid is not running.
 *
 * The registry is the one piece of process-wide state in the library: a signal handler can
 * reach nothing else. It is a fixed table (no allocation), each slot's path copied in before
 * the slot is published, so the handler only ever reads complete paths; it calls only
 * async-signal-safe functions (unlink, open, getdents64, unlinkat, rmdir, sigaction, raise).
 * Registration from several threads is safe (slots are claimed with an atomic exchange); a
 * thread that unregisters while another thread is inside the handler may race with it, which
 * at worst leaves that one temp path for the sweep.
 * Pids are only meaningful on one machine and in one pid namespace: a temp path on a file
 * system shared by several hosts could be swept while its writer (elsewhere) is alive; that
 * writer's commit then fails with an error, and nothing complete is ever removed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

#define TEMP_SLOTS 64

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_LIVE = 2 };

typedef struct TempSlot {
    int state; /* SLOT_*, accessed atomically */
    int is_dir;
    char path[PATH_MAX];
} TempSlot;

static TempSlot g_slots[TEMP_SLOTS];

int sr_temp_register(const char *path, int is_dir) {
    if (strlen(path) >= PATH_MAX) return -1;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        int expect = SLOT_FREE;
        if (!__atomic_compare_exchange_n(&g_slots[i].state, &expect, SLOT_CLAIMED, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_RELAXED))
            continue;
        strcpy(g_slots[i].path, path);
        g_slots[i].is_dir = is_dir;
        __atomic_store_n(&g_slots[i].state, SLOT_LIVE, __ATOMIC_RELEASE);
        return i;
    }
    return -1;
}

void sr_temp_unregister(int slot) {
    if (slot < 0 || slot >= TEMP_SLOTS) return;
    __atomic_store_n(&g_slots[slot].state, SLOT_FREE, __ATOMIC_RELEASE);
}

/* Empties a flat directory and removes it, with async-signal-safe calls only (no opendir:
 * it allocates). Entries are re-read from the start until none is left. */
static void remove_flat_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[4096] __attribute__((aligned(8)));
        for (int round = 0; round < 1000; round++) {
            if (lseek(fd, 0, SEEK_SET) != 0) break;
            long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
            int removed = 0;
            for (long off = 0; off < n;) {
                /* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name */
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                const char *name = buf + off + 19;
                if (reclen == 0) break;
                if (strcmp(name, ".") && strcmp(name, "..") && unlinkat(fd, name, 0) == 0) removed++;
                off += reclen;
            }
            if (n <= 0 || removed == 0) break;
        }
        close(fd);
    }
    rmdir(path);
}

static void on_signal(int sig) {
    int saved = errno;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        if (__atomic_load_n(&g_slots[i].state, __ATOMIC_ACQUIRE) != SLOT_LIVE) continue;
        if (g_slots[i].is_dir) remove_flat_dir(g_slots[i].path);
        else unlink(g_slots[i].path);
    }
    /* die of the same signal: default action, delivered when the handler returns */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
    errno = saved;
}

void sr_cleanup_on_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0) continue;
        if (old.sa_handler == SIG_IGN) continue; /* e.g. nohup: stays ignored */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) sigaddset(&sa.sa_mask, sigs[k]);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- the sweep of dead processes' leftovers ------------------------------------------------- */

enum { STALE_FILE = 1, STALE_DIR, STALE_OLD };

/* digits only, 1..10 of them, a positive pid that fits an int */
static long parse_pid(const char *s, size_t n) {
    if (n == 0 || n > 10) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > 0 && v <= INT_MAX ? v : -1;
}

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Recognises our temp names: "<base>.tmp.<pid>.XXXXXX" and "<base>.tmp.<pid>" (files),
 * "<base>.tmp-<pid>" (directories), "<base>.old-<pid>" (directory backups). Returns the kind
 * and sets *base_len and *pid, or 0. */
static int parse_stale(const char *name, size_t *base_len, long *pid) {
    size_t n = strlen(name);
    const char *dot = strrchr(name, '.'), *dash = strrchr(name, '-');
    /* "<base>.tmp.<pid>.XXXXXX" (mkstemp: 6 letters or digits) */
    if (dot && n - (size_t)(dot - name) == 7) {
        int ok = 1;
        for (const char *c = dot + 1; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) ok = 0;
        size_t m = (size_t)(dot - name);
        const char *d2 = NULL;
        for (size_t i = m; ok && i > 0; i--)
            if (name[i - 1] == '.') {
                d2 = name + i - 1;
                break;
            }
        if (ok && d2) {
            long p = parse_pid(d2 + 1, (size_t)(dot - d2 - 1));
            size_t b = (size_t)(d2 - name);
            if (p > 0 && ends_with(name, b, ".tmp") && b > 4) {
                *base_len = b - 4;
                *pid = p;
                return STALE_FILE;
            }
        }
    }
    /* "<base>.tmp.<pid>" (the commands' temp names before the pid-and-random form) */
    if (dot) {
        long p = parse_pid(dot + 1, n - (size_t)(dot - name) - 1);
        size_t b = (size_t)(dot - name);
        if (p > 0 && ends_with(name, b, ".tmp") && b > 4) {
            *base_len = b - 4;
            *pid = p;
            return STALE_FILE;
        }
    }
    /* "<base>.tmp-<pid>", "<base>.old-<pid>" */
    if (dash) {
        long p = parse_pid(dash + 1, n - (size_t)(dash - name) - 1);
        size_t b = (size_t)(dash - name);
        if (p > 0 && b > 4 && (ends_with(name, b, ".tmp") || ends_with(name, b, ".old"))) {
            *base_len = b - 4;
            *pid = p;
            return ends_with(name, b, ".tmp") ? STALE_DIR : STALE_OLD;
        }
    }
    return 0;
}

static int pid_alive(long pid) {
    if (pid == (long)getpid()) return 1;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* one entry of dir: removed (or, for a backup whose original is missing, put back) when it
 * is ours and its process is gone. want_base: only that base name; else any base that starts
 * with prefix. */
static void sweep_entry(const char *dir, const char *name, const char *want_base, const char *prefix) {
    size_t bl;
    long pid;
    int kind = parse_stale(name, &bl, &pid);
    if (!kind) return;
    if (want_base && (strlen(want_base) != bl || strncmp(name, want_base, bl) != 0)) return;
    if (!want_base && strncmp(name, prefix, strlen(prefix)) != 0) return;
    if (pid_alive(pid)) return;
    char *path = sr_path_join(dir, name);
    struct stat sb;
    if (lstat(path, &sb) != 0 || (kind == STALE_FILE) != !S_ISDIR(sb.st_mode)) {
        free(path); /* not what that pattern names (a file called x.tmp-5, ...): leave it */
        return;
    }
    if (kind == STALE_OLD) {
        char *base = sr_malloc(bl + 1);
        memcpy(base, name, bl);
        base[bl] = '\0';
        char *orig = sr_path_join(dir, base);
        free(base);
        if (lstat(orig, &sb) != 0 && errno == ENOENT) {
            /* died between moving the old directory aside and renaming the new one in */
            if (rename(path, orig) == 0)
                sr_log("%s: put back from %s (left by process %ld, which is gone)", orig, path, pid);
            free(orig);
            free(path);
            return;
        }
        free(orig);
    }
    SrError e = {{0}};
    if (sr_rmtree(path, &e) == 0) sr_log("removed %s (left by process %ld, which is gone)", path, pid);
    else sr_log("%s", e.msg);
    free(path);
}

static void sweep(const char *dir, const char *want_base, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return;
    /* collect first: renaming and removing while readdir walks the directory is unspecified */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t bl;
        long pid;
        if (!parse_stale(e->d_name, &bl, &pid)) continue;
        if (n == cap) names = sr_realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *names);
        names[n++] = sr_strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        sweep_entry(dir, names[i], want_base, prefix);
        free(names[i]);
    }
    free(names);
}

void sr_sweep_stale(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    char *p = sr_malloc(n + 1);
    memcpy(p, path, n);
    p[n] = '\0';
    char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    if (*base && strcmp(base, ".") && strcmp(base, "..")) {
        if (!slash) sweep(".", base, NULL);
        else if (slash == p) sweep("/", base, NULL);
        else {
            *slash = '\0';
            sweep(p, base, NULL);
        }
    }
    free(p);
}

void sr_sweep_stale_in(const char *dir, const char *prefix) { sweep(dir, NULL, prefix ? prefix : ""); }
