/*
 * The file plumbing (common/fileio.h): outputs that would destroy an input are refused (same
 * inode through links and spellings, stdin, directories); atomic files carry the pid and are
 * swept once that process is gone, never while it lives; atomic directories keep the old
 * directory until the new one is complete (a failure half-way, and a "crash" between the two
 * renames, leave a directory that is whole); a SIGTERM / SIGINT removes the temp paths and the
 * process still dies of the signal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/fileio.h"
#include "harness.h"

static char *join(const char *dir, const char *name) { return sr_path_join(dir, name); }

static void put(const char *path, const char *text) { sr_test_write_file(path, text, strlen(text)); }

static int exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* text of a file (static ring of 4), "" when missing */
static const char *text_of(const char *path) {
    static char ring[4][256];
    static int k;
    char *b = ring[k++ & 3];
    char *d = sr_test_read_file(path, NULL);
    snprintf(b, 256, "%s", d ? d : "");
    free(d);
    return b;
}

/* entries of dir whose name starts with prefix */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

/* a pid that is not running: a child that has exited and been reaped */
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void test_check_output(void) {
    const char *t = sr_test_tmpdir("fileio_check");
    char *in = join(t, "in.jsonl"), *lnk = join(t, "link.jsonl"), *hard = join(t, "hard.jsonl");
    char *other = join(t, "other.jsonl"), *sub = join(t, "sub"), *nested = join(t, "sub/deep/x.jsonl");
    put(in, "{\"text\":\"a\"}\n");
    put(other, "x\n");
    CHECK(symlink("in.jsonl", lnk) == 0 && link(in, hard) == 0);
    char spelled[4200];
    snprintf(spelled, sizeof spelled, "%s/./sub/../in.jsonl", t);
    mkdir(sub, 0755);
    SrError err = {{0}};
    CHECK(sr_check_output("--output", in, 0, "--input", in, &err) == -1 && strstr(err.msg, "--output") &&
          strstr(err.msg, "--input") && strstr(err.msg, "same file"));
    CHECK(sr_check_output("--output", lnk, 0, "--input", in, &err) == -1);
    CHECK(sr_check_output("--output", hard, 0, "--input", in, &err) == -1);
    CHECKF(sr_check_output("--output", spelled, 0, "--input", in, &err) == -1, "%s", spelled);
    CHECK(sr_check_output("--output", in, 0, "--input", lnk, &err) == -1);
    CHECK(sr_check_output("--output", other, 0, "--input", in, &err) == 0);
    char *fresh = join(t, "new.jsonl");
    CHECK(sr_check_output("--output", fresh, 0, "--input", in, &err) == 0);
    CHECK(sr_check_output("--output", "-", 0, "--input", in, &err) == 0);
    CHECK(sr_check_output("--output", NULL, 0, "--input", in, &err) == 0);
    CHECK(sr_check_output("--output", t, 0, "--input", in, &err) == -1 && strstr(err.msg, "is a directory"));
    /* stdin that is the output file */
    int saved = dup(0), fd = open(in, O_RDONLY);
    dup2(fd, 0);
    CHECK(sr_check_output("--output", in, 0, "--input", "-", &err) == -1 && strstr(err.msg, "stdin"));
    CHECK(sr_check_output("--output", other, 0, "--input", "-", &err) == 0);
    dup2(saved, 0);
    close(fd);
    close(saved);
    /* directory outputs: the input is the directory or lies anywhere inside it */
    char *deep = join(t, "sub/deep");
    sr_mkdir_p(deep, &err);
    put(nested, "x\n");
    CHECK(sr_check_output("--out", sub, 1, "--input", nested, &err) == -1 && strstr(err.msg, "contains"));
    CHECK(sr_check_output("--out", t, 1, "--checkpoint", sub, &err) == -1);
    CHECK(sr_check_output("--out", sub, 1, "--checkpoint", sub, &err) == -1 && strstr(err.msg, "same directory"));
    CHECK(sr_check_output("--out", sub, 1, "--input", in, &err) == 0);
    CHECK(sr_check_output("--out", deep, 1, "--checkpoint", sub, &err) == 0); /* out inside in: fine */
    CHECK(sr_check_output("--out", in, 1, "--input", other, &err) == -1 && strstr(err.msg, "not a directory"));
    /* a file output inside an input directory: an existing file is refused, a new one is fine */
    CHECK(sr_check_output("--output", nested, 0, "--model", sub, &err) == -1 && strstr(err.msg, "is a file of --model"));
    char *newer = join(t, "sub/deep/new.jsonl");
    CHECK(sr_check_output("--output", newer, 0, "--model", sub, &err) == 0);
    CHECK(sr_check_output("--output", other, 0, "--model", sub, &err) == 0);
    free(newer);
    free(in), free(lnk), free(hard), free(other), free(sub), free(nested), free(fresh), free(deep);
}

static void test_atomic_file(void) {
    const char *t = sr_test_tmpdir("fileio_atomic");
    char *p = join(t, "out.jsonl");
    SrError err = {{0}};
    SrAtomicFile af;
    CHECK(sr_atomic_open(&af, p, &err) == 0);
    char want[64];
    snprintf(want, sizeof want, "out.jsonl.tmp.%ld.", (long)getpid());
    CHECKF(strstr(af.tmp_path, want) != NULL, "temp name %s carries the pid", af.tmp_path);
    CHECK(sr_atomic_write(&af, "new\n", 4, &err) == 0 && sr_atomic_commit(&af, &err) == 0);
    CHECK(!strcmp(text_of(p), "new\n") && count_prefix(t, "out.jsonl.tmp") == 0);
    /* a write that fails at commit leaves the old file and no temp */
    setenv("SR_TEST_FAIL_WRITE", "out.jsonl", 1);
    int rc = sr_write_file_atomic(p, "newer\n", 6, &err);
    unsetenv("SR_TEST_FAIL_WRITE");
    CHECK(rc == -1 && strstr(err.msg, "No space left"));
    CHECK(!strcmp(text_of(p), "new\n") && count_prefix(t, "out.jsonl.tmp") == 0);
    /* through a symbolic link the file it names is replaced and the link stays a link; a link
     * to a process's descriptor (what /dev/stdout is) is refused, never renamed over */
    char *target = join(t, "target.txt"), *lk = join(t, "link.txt"), *fd1 = join(t, "fd1");
    put(target, "old\n");
    CHECK(symlink("target.txt", lk) == 0 && symlink("/proc/self/fd/1", fd1) == 0);
    CHECK(sr_write_file_atomic(lk, "via link\n", 9, &err) == 0);
    struct stat sb;
    CHECK(lstat(lk, &sb) == 0 && S_ISLNK(sb.st_mode) && !strcmp(text_of(target), "via link\n"));
    int to_fd = sr_write_file_atomic(fd1, "x", 1, &err);
    CHECK(lstat(fd1, &sb) == 0 && S_ISLNK(sb.st_mode));
    CHECK(to_fd == -1);
    free(target), free(lk), free(fd1);
    /* an existing directory is not replaced by a file */
    char *d = join(t, "adir");
    mkdir(d, 0755);
    CHECK(sr_atomic_open(&af, d, &err) == -1 && strstr(err.msg, "is a directory"));
    free(d);
    free(p);
}

static void test_sweep(void) {
    const char *t = sr_test_tmpdir("fileio_sweep");
    long dead = dead_pid(), live = (long)getppid();
    char name[256];
    char *p = join(t, "score.jsonl");
    /* a dead process's temp files (both forms), a live one's, and names that only look alike */
    const char *keep_fmt[] = {"score.jsonl.tmp.%ld", "score.jsonl.tmp.%ld.Ab12Cd", NULL};
    for (int i = 0; keep_fmt[i]; i++) {
        snprintf(name, sizeof name, keep_fmt[i], dead);
        char *q = join(t, name);
        put(q, "stale");
        free(q);
        snprintf(name, sizeof name, keep_fmt[i], live);
        q = join(t, name);
        put(q, "live");
        free(q);
    }
    snprintf(name, sizeof name, "other.jsonl.tmp.%ld", dead);
    char *other = join(t, name);
    put(other, "other base");
    char *notpid = join(t, "score.jsonl.tmp.notapid");
    put(notpid, "not ours");
    SrError err = {{0}};
    CHECK(sr_write_file_atomic(p, "ok\n", 3, &err) == 0);
    snprintf(name, sizeof name, "score.jsonl.tmp.%ld", dead);
    char *q1 = join(t, name);
    snprintf(name, sizeof name, "score.jsonl.tmp.%ld.Ab12Cd", dead);
    char *q2 = join(t, name);
    snprintf(name, sizeof name, "score.jsonl.tmp.%ld", live);
    char *q3 = join(t, name);
    CHECK(!exists(q1) && !exists(q2));
    CHECK(exists(q3) && exists(other) && exists(notpid));
    free(q1), free(q2), free(q3), free(other), free(notpid), free(p);

    /* directories: a dead writer's temp dir goes; a backup whose original is missing is put
     * back (died between the two renames); a backup next to its original goes */
    char *m = join(t, "model"), *m2 = join(t, "model2");
    snprintf(name, sizeof name, "model.tmp-%ld", dead);
    char *mt = join(t, name);
    snprintf(name, sizeof name, "model.old-%ld", dead);
    char *mo = join(t, name);
    snprintf(name, sizeof name, "model2.old-%ld", dead);
    char *m2o = join(t, name);
    snprintf(name, sizeof name, "model.tmp-%ld", live);
    char *ml = join(t, name);
    mkdir(mt, 0755), mkdir(mo, 0755), mkdir(m2o, 0755), mkdir(ml, 0755), mkdir(m2, 0755);
    char *f = join(mo, "config.json");
    put(f, "old");
    free(f);
    f = join(mt, "half.bin");
    put(f, "half");
    free(f);
    sr_sweep_stale(m);
    sr_sweep_stale(m2);
    char *mc = join(m, "config.json");
    CHECK(!exists(mt) && !exists(mo) && !strcmp(text_of(mc), "old"));
    CHECK(!exists(m2o) && exists(m2) && exists(ml));
    /* the checkpoint prune's form: every stale name under a prefix */
    snprintf(name, sizeof name, "checkpoint-7.tmp-%ld", dead);
    char *ck = join(t, name);
    mkdir(ck, 0755);
    sr_sweep_stale_in(t, "checkpoint-");
    CHECK(!exists(ck) && exists(ml));
    free(m), free(m2), free(mt), free(mo), free(m2o), free(ml), free(mc), free(ck);
}

static void write_dir(const char *dir, const char *a, const char *b) {
    char *pa = join(dir, "a.txt"), *pb = join(dir, "b.txt");
    SrError err = {{0}};
    sr_write_file_atomic(pa, a, strlen(a), &err);
    sr_write_file_atomic(pb, b, strlen(b), &err);
    free(pa), free(pb);
}

static void test_atomic_dir(void) {
    const char *t = sr_test_tmpdir("fileio_dir");
    char *d = join(t, "nested/model");
    char *a = join(d, "a.txt"), *b = join(d, "b.txt");
    SrError err = {{0}};
    SrAtomicDir ad;
    CHECK(sr_atomic_dir_open(&ad, d, &err) == 0);
    char want[64];
    snprintf(want, sizeof want, "model.tmp-%ld", (long)getpid());
    CHECK(ad.tmp && strstr(ad.tmp, want) && !exists(d));
    write_dir(ad.tmp, "A1", "B1");
    CHECK(sr_atomic_dir_commit(&ad, &err) == 0);
    CHECK(!strcmp(text_of(a), "A1") && !strcmp(text_of(b), "B1"));
    char *nested = join(t, "nested");
    CHECK(count_prefix(nested, "model.") == 0);
    /* a failure half-way (the second file cannot be written): the old directory is whole */
    CHECK(sr_atomic_dir_open(&ad, d, &err) == 0);
    setenv("SR_TEST_FAIL_WRITE", "b.txt", 1);
    write_dir(ad.tmp, "A2", "B2");
    char *pb = join(ad.tmp, "b.txt");
    int half = exists(pb) == 0;
    free(pb);
    unsetenv("SR_TEST_FAIL_WRITE");
    CHECK(half);
    sr_atomic_dir_abort(&ad);
    CHECK(!strcmp(text_of(a), "A1") && !strcmp(text_of(b), "B1") && count_prefix(nested, "model.") == 0);
    /* a complete replacement: new content, no backup left, stale files of the old one gone */
    char *extra = join(d, "stale.bin");
    put(extra, "x");
    CHECK(sr_atomic_dir_open(&ad, d, &err) == 0);
    write_dir(ad.tmp, "A3", "B3");
    CHECK(sr_atomic_dir_commit(&ad, &err) == 0);
    CHECK(!strcmp(text_of(a), "A3") && !strcmp(text_of(b), "B3") && !exists(extra));
    CHECK(count_prefix(nested, "model.") == 0);
    /* trailing slashes name the same directory (temp and backup are siblings, not children) */
    char slashed[4200];
    snprintf(slashed, sizeof slashed, "%s//", d);
    CHECK(sr_atomic_dir_open(&ad, slashed, &err) == 0);
    write_dir(ad.tmp, "A4", "B4");
    CHECK(sr_atomic_dir_commit(&ad, &err) == 0 && !strcmp(text_of(a), "A4"));
    CHECK(count_prefix(nested, "model.") == 0 && count_prefix(d, "model") == 0);
    /* through a link to a directory, the directory is replaced and the link stays */
    char *dl = join(t, "dirlink");
    CHECK(symlink("nested/model", dl) == 0);
    CHECK(sr_atomic_dir_open(&ad, dl, &err) == 0);
    write_dir(ad.tmp, "A5", "B5");
    struct stat sb;
    CHECK(sr_atomic_dir_commit(&ad, &err) == 0 && !strcmp(text_of(a), "A5") && lstat(dl, &sb) == 0 &&
          S_ISLNK(sb.st_mode) && count_prefix(t, "dirlink") == 1);
    free(dl);
    /* a file where the directory should be is refused */
    char *file = join(t, "file");
    put(file, "x");
    CHECK(sr_atomic_dir_open(&ad, file, &err) == -1 && strstr(err.msg, "not a directory"));
    /* rmtree */
    CHECK(sr_rmtree(nested, &err) == 0 && !exists(nested) && sr_rmtree(nested, &err) == 0);
    free(d), free(a), free(b), free(nested), free(extra), free(file);
}

/* a child that registers an open atomic file and directory, then waits for sig */
static void test_signal_cleanup_one(int sig, int install) {
    const char *t = sr_test_tmpdir(sig == SIGTERM ? "fileio_sigterm" : "fileio_sigint");
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (install) sr_cleanup_on_signals();
        SrError err = {{0}};
        SrAtomicFile af;
        SrAtomicDir ad;
        char *p = join(t, "out.jsonl"), *d = join(t, "model");
        if (sr_atomic_open(&af, p, &err) || sr_atomic_write(&af, "partial", 7, &err) ||
            sr_atomic_dir_open(&ad, d, &err))
            _exit(3);
        write_dir(ad.tmp, "A", "B");
        SrAtomicFile inner; /* a file being written inside the temp directory */
        char *ip = join(ad.tmp, "model.safetensors");
        if (sr_atomic_open(&inner, ip, &err)) _exit(3);
        if (write(fds[1], "r", 1) != 1) _exit(3);
        for (;;) pause();
    }
    close(fds[1]);
    char c;
    CHECK(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    CHECK(count_prefix(t, "out.jsonl.tmp.") == 1 && count_prefix(t, "model.tmp-") == 1);
    kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == sig, "status %d", st);
    if (install) {
        CHECK(count_prefix(t, "out.jsonl.tmp.") == 0 && count_prefix(t, "model.tmp-") == 0);
    } else {
        /* without the handler the temp paths stay (what the sweep is for): the check above
         * can fail */
        CHECK(count_prefix(t, "out.jsonl.tmp.") == 1 && count_prefix(t, "model.tmp-") == 1);
    }
    CHECK(count_prefix(t, "out.jsonl") == (install ? 0 : 1) && count_prefix(t, "model") == (install ? 0 : 1));
}

static void test_signal_cleanup(void) {
    test_signal_cleanup_one(SIGTERM, 1);
    test_signal_cleanup_one(SIGINT, 1);
    test_signal_cleanup_one(SIGTERM, 0);
}

int main(void) {
    test_check_output();
    test_atomic_file();
    test_sweep();
    test_atomic_dir();
    test_signal_cleanup();
    return sr_test_done();
}
