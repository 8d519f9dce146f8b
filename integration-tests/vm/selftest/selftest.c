/*
 * Stand-in for the integration test binary, to check the VM harness end to end before the
 * real tests exist. It speaks the same interface as the libtest-mimic harness run.sh drives:
 *
 *   selftest [--test-threads=N] [--quiet] [FILTER...]     (FILTER: substring of a test name)
 *   env: EXPECT_LANDLOCK_ABI=N   fail unless the kernel's Landlock ABI is exactly N
 *        SANDBOX_MUST_WORK=1     a test that would be skipped fails instead
 *
 * and prints libtest-style lines ("test NAME ... ok|FAILED|ignored", "test result: ...").
 * Exit 0 if nothing failed, 101 otherwise (libtest's code).
 *
 * Build: gcc -O2 -static -o selftest selftest.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

enum result { PASS, FAIL, SKIP };

static char why[512];

static enum result failf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return FAIL;
}

static enum result skipf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return SKIP;
}

static int read_file(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    return 0;
}

static int write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int has_word(const char *list, const char *word) {
    size_t l = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += l)
        if ((p == list || p[-1] == ' ') && (p[l] == 0 || p[l] == ' ' || p[l] == '\n'))
            return 1;
    return 0;
}

/* ---- core ---- */

static enum result t_kernel(void) {
    struct utsname u;
    if (uname(&u) != 0)
        return failf("uname: %s", strerror(errno));
    printf("    kernel %s, uid %d, pid %d\n", u.release, getuid(), getpid());
    return PASS;
}

/* ---- landlock ---- */

static enum result t_landlock_abi(void) {
    long abi = syscall(444 /* landlock_create_ruleset */, NULL, 0, 1UL /* VERSION */);
    const char *exp = getenv("EXPECT_LANDLOCK_ABI");
    if (abi < 0) {
        int e = errno;
        printf("    landlock: %s\n", e == ENOSYS ? "not built (ENOSYS)" : e == EOPNOTSUPP ? "disabled (EOPNOTSUPP)" : strerror(e));
        if (exp && *exp)
            return failf("expected Landlock ABI %s, got errno %d", exp, e);
        return skipf("landlock: %s", strerror(e));
    }
    printf("    landlock ABI %ld\n", abi);
    if (exp && *exp && atol(exp) != abi)
        return failf("expected Landlock ABI %s, got %ld", exp, abi);
    return PASS;
}

/* ---- cgroup ---- */

/* Own cgroup v2 directory (absolute) into out; 0 on success. */
static int own_cgroup(char *out, size_t len) {
    char buf[4096];
    if (read_file("/proc/self/cgroup", buf, sizeof buf) != 0)
        return -1;
    char *p = strstr(buf, "0::");
    if (!p)
        return -1;
    p += 3;
    char *nl = strchr(p, '\n');
    if (nl)
        *nl = 0;
    snprintf(out, len, "/sys/fs/cgroup%s", strcmp(p, "/") == 0 ? "" : p);
    return 0;
}

/*
 * The delegation root: the highest ancestor of our cgroup we can write cgroup.procs of
 * (root: /sys/fs/cgroup). A sandbox puts its cgroups there, beside the caller's leaf.
 */
static int delegation_root(char *out, size_t len) {
    char cg[1024], try[1100];
    if (own_cgroup(cg, sizeof cg) != 0)
        return -1;
    snprintf(out, len, "%s", cg);
    for (;;) {
        char *slash = strrchr(cg, '/');
        if (!slash || slash - cg < (long)strlen("/sys/fs/cgroup"))
            break;
        *slash = 0;
        snprintf(try, sizeof try, "%s/cgroup.procs", cg);
        if (access(try, W_OK) != 0)
            break;
        snprintf(out, len, "%s", cg);
    }
    return 0;
}

static enum result t_cgroup_controllers(void) {
    char cg[1024], path[1200], ctl[512];
    if (read_file("/sys/fs/cgroup/cgroup.controllers", ctl, sizeof ctl) != 0)
        return skipf("cgroup2: no /sys/fs/cgroup/cgroup.controllers (not pure cgroup v2)");
    printf("    root controllers: %s\n", ctl);
    if (delegation_root(cg, sizeof cg) != 0)
        return failf("cannot find own cgroup");
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", cg);
    if (read_file(path, ctl, sizeof ctl) != 0)
        return failf("read %s: %s", path, strerror(errno));
    printf("    delegation root %s, subtree_control: %s\n", cg, ctl);
    const char *need[] = {"memory", "pids", "cpu"};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!has_word(ctl, need[i]))
            return failf("controller %s not enabled in %s", need[i], path);
    return PASS;
}

static enum result t_cgroup_oom(void) {
    char root[1024], cg[1200], path[1300], buf[4096];
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0)
        return skipf("cgroup2: not pure cgroup v2");
    if (delegation_root(root, sizeof root) != 0)
        return failf("cannot find own cgroup");
    snprintf(cg, sizeof cg, "%s/selftest-%d", root, getpid());
    if (mkdir(cg, 0755) != 0)
        return failf("mkdir %s: %s", cg, strerror(errno));
    enum result r = PASS;
    snprintf(path, sizeof path, "%s/memory.max", cg);
    if (write_file(path, "33554432") != 0) {
        r = failf("write %s: %s", path, strerror(errno));
        goto out;
    }
    read_file(path, buf, sizeof buf);
    if (strcmp(buf, "33554432") != 0) {
        r = failf("memory.max reads back %s", buf);
        goto out;
    }
    snprintf(path, sizeof path, "%s/memory.swap.max", cg);
    write_file(path, "0"); /* absent without swap accounting: fine */

    pid_t pid = fork();
    if (pid == 0) {
        snprintf(path, sizeof path, "%s/cgroup.procs", cg);
        if (write_file(path, "0") != 0)
            _exit(3);
        size_t sz = 256u << 20;
        char *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            _exit(4);
        for (size_t i = 0; i < sz; i += 4096)
            m[i] = 1;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    snprintf(path, sizeof path, "%s/memory.events", cg);
    read_file(path, buf, sizeof buf);
    char *k = strstr(buf, "oom_kill ");
    long kills = k ? atol(k + 9) : -1;
    printf("    child: %s %d, memory.events oom_kill %ld\n",
           WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), kills);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
        r = failf("memory hog was not SIGKILLed (status %#x)", st);
    else if (kills < 1)
        r = failf("memory.events shows no oom_kill");
out:
    for (int i = 0; i < 50 && rmdir(cg) != 0 && errno == EBUSY; i++)
        usleep(20000);
    if (access(cg, F_OK) == 0 && r == PASS)
        r = failf("cannot remove %s: %s", cg, strerror(errno));
    return r;
}

/* ---- userns ---- */

static enum result t_userns(void) {
    pid_t pid = fork();
    if (pid == 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        char map[64];
        if (unshare(CLONE_NEWUSER) != 0)
            _exit(10);
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %d 1", uid);
        if (write_file("/proc/self/uid_map", map) != 0)
            _exit(11);
        snprintf(map, sizeof map, "0 %d 1", gid);
        if (write_file("/proc/self/gid_map", map) != 0)
            _exit(12);
        if (getuid() != 0)
            _exit(13);
        if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) != 0)
            _exit(14);
        pid_t c = fork(); /* first child in the new pid namespace is pid 1 */
        if (c == 0)
            _exit(getpid() == 1 ? 0 : 15);
        int st;
        waitpid(c, &st, 0);
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 16);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return failf("userns child failed at step %d (10 unshare user, 11 uid_map, 12 gid_map, 14 unshare ns, 15 pid 1)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("    user+mnt+pid+uts+ipc+net namespaces as uid %d: ok\n", getuid());
    return PASS;
}

/* ---- seccomp ---- */

static enum result t_seccomp(void) {
    pid_t pid = fork();
    if (pid == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = sizeof f / sizeof *f, .filter = f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(10);
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
            _exit(11);
        struct utsname u;
        if (uname(&u) == 0 || errno != EPERM)
            _exit(12);
        unsigned action = SECCOMP_RET_USER_NOTIF;
        if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) != 0)
            _exit(13);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return failf("seccomp child failed at step %d (10 no_new_privs, 11 filter, 12 not enforced, 13 no USER_NOTIF)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    printf("    filter enforced, USER_NOTIF available\n");
    return PASS;
}

struct test {
    const char *name;
    enum result (*fn)(void);
};

static const struct test tests[] = {
    {"core::kernel_version", t_kernel},
    {"landlock::abi_matches_expectation", t_landlock_abi},
    {"cgroup::controllers_delegated", t_cgroup_controllers},
    {"cgroup::memory_max_oom_kill", t_cgroup_oom},
    {"userns::unprivileged_namespaces", t_userns},
    {"seccomp::filter_and_user_notif", t_seccomp},
};

int main(int argc, char **argv) {
    const char *filters[64];
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue; /* --test-threads=N, --quiet, ...: accepted, ignored */
        if (nf < 64)
            filters[nf++] = argv[i];
    }
    const char *must = getenv("SANDBOX_MUST_WORK");
    int must_work = must && *must && strcmp(must, "0") != 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    int n = 0, passed = 0, failed = 0, ignored = 0, filtered = 0;
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        int match = nf == 0;
        for (int j = 0; j < nf && !match; j++)
            match = strstr(tests[i].name, filters[j]) != NULL;
        if (match)
            n++;
    }
    printf("\nrunning %d tests\n", n);
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        int match = nf == 0;
        for (int j = 0; j < nf && !match; j++)
            match = strstr(tests[i].name, filters[j]) != NULL;
        if (!match) {
            filtered++;
            continue;
        }
        why[0] = 0;
        printf("test %s ...\n", tests[i].name);
        enum result r = tests[i].fn();
        if (r == SKIP && must_work)
            r = FAIL;
        if (r == SKIP)
            printf("    skipped: %s\n", why);
        else if (r == FAIL)
            printf("    failure: %s\n", why);
        printf("test %s ... %s\n", tests[i].name, r == PASS ? "ok" : r == SKIP ? "ignored" : "FAILED");
        if (r == PASS)
            passed++;
        else if (r == SKIP)
            ignored++;
        else
            failed++;
    }
    printf("\ntest result: %s. %d passed; %d failed; %d ignored; 0 measured; %d filtered out\n",
           failed ? "FAILED" : "ok", passed, failed, ignored, filtered);
    return failed ? 101 : 0;
}
