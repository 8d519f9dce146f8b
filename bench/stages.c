// Kernel stage costs for bench/README.md ("where the time goes").
// Build: cc -O2 -o /tmp/stages bench/stages.c    Run as root: /tmp/stages [iterations]
//
// 1. clone(flags) + child _exit(0) + waitpid, per namespace set: median µs of the clone()
//    call in the parent and of clone..reaped (namespace creation and teardown).
// 2. cgroup v1/v2 attach: mkdir a cgroup per controller, write limits, move a blocked child
//    into it (write cgroup.procs), rmdir; back-to-back vs after an idle second.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double median_us(long long *v, int n) {
    qsort(v, n, sizeof *v, cmp_ll);
    return v[n / 2] / 1000.0;
}

static void clone_cost(const char *name, unsigned long flags, int n) {
    long long *c = calloc(n, sizeof *c), *t = calloc(n, sizeof *t);
    int ok = 0;
    for (int i = 0; i < n + 5; i++) {
        long long t0 = now_ns();
        pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) _exit(0);
        long long t1 = now_ns();
        if (pid < 0) {
            printf("%-40s clone failed: %s\n", name, strerror(errno));
            free(c); free(t);
            return;
        }
        waitpid(pid, NULL, 0);
        long long t2 = now_ns();
        if (i >= 5) { c[ok] = t1 - t0; t[ok] = t2 - t0; ok++; }
    }
    printf("%-40s clone %7.1f µs   clone..reaped %7.1f µs\n", name, median_us(c, ok),
           median_us(t, ok));
    free(c); free(t);
}

static int write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = write(fd, s, strlen(s));
    close(fd);
    return r < 0 ? -1 : 0;
}

// One sandbox's cgroup work; returns attach ns (all controllers) or -1; *setup gets mkdir+limits.
static long long cgroup_once(const char **ctl, int nctl, long long *setup, long long *cleanup) {
    char path[256], buf[32];
    int pfd[2];
    if (pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid == 0) { char x; close(pfd[1]); (void)!read(pfd[0], &x, 1); _exit(0); }
    close(pfd[0]);
    long long t0 = now_ns();
    for (int i = 0; i < nctl; i++) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s/sandbox-bench-%d", ctl[i], getpid());
        if (mkdir(path, 0755) && errno != EEXIST) { perror(path); return -1; }
        if (!strcmp(ctl[i], "memory")) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/memory/sandbox-bench-%d/memory.limit_in_bytes", getpid());
            write_file(path, "536870912");
        } else if (!strcmp(ctl[i], "pids")) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/pids/sandbox-bench-%d/pids.max", getpid());
            write_file(path, "256");
        } else if (!strcmp(ctl[i], "cpu")) {
            snprintf(path, sizeof path, "/sys/fs/cgroup/cpu/sandbox-bench-%d/cpu.cfs_quota_us", getpid());
            write_file(path, "100000");
        }
    }
    long long t1 = now_ns();
    snprintf(buf, sizeof buf, "%d", pid);
    for (int i = 0; i < nctl; i++) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s/sandbox-bench-%d/cgroup.procs", ctl[i], getpid());
        if (write_file(path, buf)) { perror(path); return -1; }
    }
    long long t2 = now_ns();
    close(pfd[1]);
    waitpid(pid, NULL, 0);
    long long t3 = now_ns();
    for (int i = 0; i < nctl; i++) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/%s/sandbox-bench-%d", ctl[i], getpid());
        rmdir(path);
    }
    *cleanup = now_ns() - t3;
    *setup = t1 - t0;
    return t2 - t1;
}

static void cgroup_cost(int n) {
    static const char *v1[] = {"memory", "pids", "cpu"};
    struct stat st;
    if (stat("/sys/fs/cgroup/memory/cgroup.procs", &st)) {
        printf("skipped: cgroup v1 attach: /sys/fs/cgroup/memory is not a v1 hierarchy\n");
        return;
    }
    long long a[64], s[64], c[64];
    if (n > 64) n = 64;
    int k = 0;
    for (int i = 0; i < n; i++) {
        a[k] = cgroup_once(v1, 3, &s[k], &c[k]);
        if (a[k] >= 0) k++;
    }
    if (!k) { printf("skipped: cgroup v1 attach: not permitted\n"); return; }
    printf("cgroup v1 back-to-back (%d):  mkdir+limits %7.1f µs  attach(3 ctl) %7.1f µs  "
           "rmdir %7.1f µs\n", k, median_us(s, k), median_us(a, k), median_us(c, k));
    int m = 0;
    long long ai[8], si[8], ci[8];
    for (int i = 0; i < 6; i++) {
        sleep(1);
        ai[m] = cgroup_once(v1, 3, &si[m], &ci[m]);
        if (ai[m] >= 0) m++;
    }
    printf("cgroup v1 after 1 s idle (%d): mkdir+limits %7.1f µs  attach(3 ctl) %7.1f µs  "
           "rmdir %7.1f µs   (each: ", m, median_us(si, m), median_us(ai, m), median_us(ci, m));
    for (int i = 0; i < m; i++) printf("%.0f ", ai[i] / 1000.0);
    printf("µs)\n");
    // one controller only, after idle: is the cost per write or once?
    m = 0;
    for (int i = 0; i < 4; i++) {
        sleep(1);
        ai[m] = cgroup_once(v1 + 1, 1, &si[m], &ci[m]);
        if (ai[m] >= 0) m++;
    }
    printf("cgroup v1 after 1 s idle, pids only (%d): attach %7.1f µs\n", m, median_us(ai, m));
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    clone_cost("fork (no namespaces)", 0, n);
    clone_cost("NEWUSER", CLONE_NEWUSER, n);
    clone_cost("NEWUSER|NEWNS", CLONE_NEWUSER | CLONE_NEWNS, n);
    clone_cost("NEWUSER|NEWPID", CLONE_NEWUSER | CLONE_NEWPID, n);
    clone_cost("NEWUSER|NEWIPC|NEWUTS", CLONE_NEWUSER | CLONE_NEWIPC | CLONE_NEWUTS, n);
    clone_cost("NEWUSER|NEWCGROUP", CLONE_NEWUSER | CLONE_NEWCGROUP, n);
    clone_cost("NEWUSER|NEWNET", CLONE_NEWUSER | CLONE_NEWNET, n);
    clone_cost("all but NEWNET", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC |
               CLONE_NEWUTS | CLONE_NEWCGROUP, n);
    clone_cost("all (bwrap --unshare-all)", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
               CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWNET, n);
    if (geteuid() == 0)
        cgroup_cost(n < 40 ? n : 40);
    else
        printf("skipped: cgroup attach: needs root on a v1 host\n");
    return 0;
}
