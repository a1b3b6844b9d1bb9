/*
 * Running the splitreason binary from a C test: run to completion with a time limit (stdout
 * and stderr to files), or start it and kill it after a delay (resume tests). Header-only,
 * for the tests that drive the command end to end.
 */
#ifndef SR_TESTS_PROC_UTIL_H
#define SR_TESTS_PROC_UTIL_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/fileio.h"

static __attribute__((unused)) double proc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* forks argv[0] with stdout/stderr redirected (NULL: /dev/null); returns the pid */
static __attribute__((unused)) pid_t proc_start(char *const argv[], const char *out, const char *errf) {
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(errf ? errf : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo >= 0) dup2(fo, 1);
        if (fe >= 0) dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* waits up to limit_s seconds; returns the exit status, 128+signal, or -1 on timeout (the
 * process is then killed) */
static __attribute__((unused)) int proc_wait(pid_t pid, double limit_s) {
    double t0 = proc_now();
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -2;
        if (proc_now() - t0 > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(5000);
    }
}

static __attribute__((unused)) int proc_run(char *const argv[], const char *out, const char *errf, double limit_s) {
    return proc_wait(proc_start(argv, out, errf), limit_s);
}

/* starts the command, SIGKILLs it after delay_s (if still running); returns 1 if it was
 * killed, 0 if it had finished by itself */
static __attribute__((unused)) int proc_run_and_kill(char *const argv[], const char *out, const char *errf, double delay_s) {
    pid_t pid = proc_start(argv, out, errf);
    double t0 = proc_now();
    int st;
    while (proc_now() - t0 < delay_s) {
        if (waitpid(pid, &st, WNOHANG) == pid) return 0;
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 1;
}


/* lines in a file (0 if missing) */
static __attribute__((unused)) long proc_count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* starts the command and SIGKILLs it `extra_s` seconds after `watch` (a file it appends rows
 * to) has grown by `rows` lines, so the kill lands in the middle of the run, whatever the
 * machine's speed; returns 1 if it was killed, 0 if it finished first (or after limit_s) */
static __attribute__((unused)) int proc_kill_after_rows(char *const argv[], const char *errf, const char *watch,
                                                        long rows, double extra_s, double limit_s) {
    long base = proc_count_lines(watch);
    pid_t pid = proc_start(argv, NULL, errf);
    double t0 = proc_now(), seen_at = -1;
    int st;
    while (proc_now() - t0 < limit_s) {
        if (waitpid(pid, &st, WNOHANG) == pid) return 0;
        if (seen_at < 0 && proc_count_lines(watch) >= base + rows) seen_at = proc_now();
        if (seen_at >= 0 && proc_now() - seen_at >= extra_s) break;
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 1;
}

/* 1 if the file contains the string */
static __attribute__((unused)) int proc_file_contains(const char *path, const char *s) {
    char *buf = NULL;
    size_t got = 0;
    SrError err;
    if (sr_read_file(path, &buf, &got, &err)) return 0;
    int hit = memmem(buf, got, s, strlen(s)) != NULL;
    free(buf);
    return hit;
}

#endif
