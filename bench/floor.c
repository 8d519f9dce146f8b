// The kernel floor of a default launch: every stage `sandbox run` performs for the default
// policy (user, mount, pid, ipc, uts, cgroup and network namespaces; the same new root: ro
// /usr and /etc, fresh /tmp, rw workspace, /proc with its read-only and masked entries, a
// minimal /dev, /etc/shadow-style masks; pivot_root; loopback up; hostname; a pid 1 that
// reaps; no_new_privs; Landlock; every capability dropped; a seccomp filter of the same
// length), in straight-line C with nothing else: no policy, no checks, no error reports.
// bench/driver.py runs it next to bwrap to show how far any launcher can get on this host.
//
// Build: cc -O2 -o floor bench/floor.c      Run: floor WORKSPACE COMMAND [ARG...]
// Exit status: the command's; 125 if a stage failed (stderr names it).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

struct mount_attr_arg {
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

#define NEWROOT "/mnt"

static void die(const char *what) {
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static void must(int r, const char *what) {
    if (r < 0) die(what);
}

static int setattr(const char *path, int recursive, unsigned long long set,
                   unsigned long long clr) {
    struct mount_attr_arg a = {set, clr, 0, 0};
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a,
                        sizeof a);
}

static void bind_mount(const char *src, const char *dst, int ro) {
    must(mount(src, dst, NULL, MS_BIND | MS_REC, NULL), dst);
    must(setattr(dst, 1, (ro ? MOUNT_ATTR_RDONLY : 0) | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                 0), dst);
}

static void touch(const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0) die(path);
    close(fd);
}

static void write_file(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) die(path);
    close(fd);
}

static void build_root(const char *ws) {
    char p[4096];
    must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "make-rprivate");
    must(mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m"), "tmpfs");
    const char *dirs[] = {"/usr", "/etc", "/tmp", "/proc", "/dev", "/.setup", "/.setup/old"};
    for (unsigned i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(p, sizeof p, NEWROOT "%s", dirs[i]);
        must(mkdir(p, 0755), p);
    }
    touch(NEWROOT "/.setup/empty");
    const char *links[][2] = {{"usr/bin", "/bin"}, {"usr/lib", "/lib"},
                              {"usr/lib64", "/lib64"}, {"usr/sbin", "/sbin"}};
    for (unsigned i = 0; i < 4; i++) {
        snprintf(p, sizeof p, NEWROOT "%s", links[i][1]);
        must(symlink(links[i][0], p), p);
    }
    bind_mount("/usr", NEWROOT "/usr", 1);
    bind_mount("/etc", NEWROOT "/etc", 1);
    must(mount("tmpfs", NEWROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "/tmp");
    // The workspace, with its parents made on the new root.
    snprintf(p, sizeof p, NEWROOT "%s", ws);
    for (char *s = p + strlen(NEWROOT) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
    bind_mount(ws, p, 0);
    must(mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL), "proc");
    const char *ro[] = {"sys", "sysrq-trigger", "irq", "bus"};
    for (unsigned i = 0; i < 4; i++) {
        snprintf(p, sizeof p, NEWROOT "/proc/%s", ro[i]);
        if (access(p, F_OK) == 0) bind_mount(p, p, 1);
    }
    // Masks, bound while the new root's own mount is read-only and noexec.
    must(setattr(NEWROOT, 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC, 0), "seal");
    const char *masks[] = {"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
                           "/proc/kcore", "/proc/keys", "/proc/timer_list",
                           "/proc/sched_debug", "/proc/kallsyms"};
    for (unsigned i = 0; i < sizeof masks / sizeof *masks; i++) {
        snprintf(p, sizeof p, NEWROOT "%s", masks[i]);
        if (access(p, F_OK) == 0 || errno != ENOENT)
            must(mount(NEWROOT "/.setup/empty", p, NULL, MS_BIND, NULL), p);
    }
    must(setattr(NEWROOT, 0, 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC), "unseal");
    const char *devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (unsigned i = 0; i < 6; i++) {
        char host[64];
        snprintf(host, sizeof host, "/dev/%s", devs[i]);
        snprintf(p, sizeof p, NEWROOT "/dev/%s", devs[i]);
        touch(p);
        must(mount(host, p, NULL, MS_BIND, NULL), p);
    }
    const char *dlinks[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
                               {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                               {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"}};
    for (unsigned i = 0; i < 6; i++) {
        snprintf(p, sizeof p, NEWROOT "/dev/%s", dlinks[i][1]);
        must(symlink(dlinks[i][0], p), p);
    }
    must(mkdir(NEWROOT "/dev/pts", 0755), "/dev/pts");
    must(mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620"), "devpts");
    must(mkdir(NEWROOT "/dev/shm", 0755), "/dev/shm");
    must(mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "shm");
    must(chdir(NEWROOT), "chdir");
    must((int)syscall(SYS_pivot_root, ".", NEWROOT "/.setup/old"), "pivot_root");
    must(chdir("/"), "chdir /");
    must(umount2("/.setup/old", MNT_DETACH), "umount old root");
    must(unlink("/.setup/empty"), "unlink");
    must(rmdir("/.setup/old"), "rmdir");
    must(rmdir("/.setup"), "rmdir");
    must(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
         "remount /");
}

static void loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("lo");
    ifr.ifr_flags |= IFF_UP;
    must(ioctl(s, SIOCSIFFLAGS, &ifr), "lo up");
    close(s);
}

static void landlock(const char *ws) {
    struct landlock_ruleset_attr attr = {.handled_access_fs = (1ULL << 13) - 1};
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (rs < 0) die("landlock_create_ruleset");
    const unsigned long long read_exec = LANDLOCK_ACCESS_FS_EXECUTE |
                                         LANDLOCK_ACCESS_FS_READ_FILE |
                                         LANDLOCK_ACCESS_FS_READ_DIR;
    struct {
        const char *path;
        unsigned long long access;
    } rules[] = {{"/usr", read_exec}, {"/etc", read_exec}, {"/proc", read_exec},
                 {"/dev", (1ULL << 13) - 1}, {"/tmp", (1ULL << 13) - 1},
                 {"/dev/shm", (1ULL << 13) - 1}, {ws, (1ULL << 13) - 1},
                 {"/", LANDLOCK_ACCESS_FS_READ_DIR}};
    for (unsigned i = 0; i < sizeof rules / sizeof *rules; i++) {
        int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) die(rules[i].path);
        struct landlock_path_beneath_attr pb = {.allowed_access = rules[i].access,
                                                .parent_fd = fd};
        must((int)syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0),
             "landlock_add_rule");
        close(fd);
    }
    must((int)syscall(SYS_landlock_restrict_self, rs, 0), "landlock_restrict_self");
    close(rs);
}

static void drop_capabilities(void) {
    for (int c = 0; c <= 40; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0}};
    must((int)syscall(SYS_capset, &h, d), "capset");
}

// A filter as long as the default profile's: the architecture check, then one comparison
// per denied syscall number (~80), allow the rest.
static void seccomp_filter(void) {
    struct sock_filter f[200];
    unsigned n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xc000003e, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                          offsetof(struct seccomp_data, nr));
    unsigned first_deny = 500, denied = 80;
    for (unsigned i = 0; i < denied; i++)
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, first_deny + i,
                                              denied - i, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    struct sock_fprog prog = {(unsigned short)n, f};
    must(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0), "seccomp");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: floor WORKSPACE COMMAND [ARG...]\n");
        return 125;
    }
    const char *ws = argv[1];
    int sync[2];
    must(pipe2(sync, O_CLOEXEC), "pipe");
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
                                              CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
                                              CLONE_NEWNET | SIGCHLD,
                               NULL, NULL, NULL, NULL);
    if (pid < 0) die("clone");
    if (pid == 0) {
        char c;
        close(sync[1]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (read(sync[0], &c, 1) != 1) _exit(125);
        setsid();
        build_root(ws);
        loopback_up();
        must(sethostname("sandbox", 7), "sethostname");
        pid_t cmd = fork();
        if (cmd < 0) die("fork");
        if (cmd == 0) {
            must(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
            landlock(ws);
            must(chdir(ws), "chdir workspace");
            drop_capabilities();
            seccomp_filter();
            execv(argv[2], argv + 2);
            _exit(127);
        }
        int st;
        for (;;) {
            pid_t w = wait(&st);
            if (w == cmd) break;
            if (w < 0 && errno != EINTR) _exit(125);
        }
        _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    close(sync[0]);
    char path[64], map[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
    write_file(path, "deny");
    snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    write_file(path, map);
    snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    write_file(path, map);
    if (write(sync[1], "x", 1) != 1) die("release");
    int st;
    if (waitpid(pid, &st, 0) < 0) die("waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
