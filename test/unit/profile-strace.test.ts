import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePath } from '../../src/lib/path-codec.js';
import { mergeTraces, parseStrace, StraceParser, STRACE_SYSCALLS, straceFlags, type Trace } from '../../src/core/profile/strace-parser.js';
import { decodeEscaped, parseFdArg, parseLine, parseReturn, parseStringArg, splitCall } from '../../src/core/profile/strace-syntax.js';

/**
 * Captured on this machine: `strace <straceFlags()> unshare --mount --pid --fork -- sh -c 'mount -t
 * proc proc FX/proc && exec chroot FX /bin/sh -c "cd /www/a,b\(c\) && cat x ../index.html
 * /etc/alias; ls /nonexist; ../../bin/echo hi"'` with FX=/tmp/exp/fx a busybox-static tree
 * (/etc/alias -> ../www/index.html). Lines of the host's dynamic loader and PATH search trimmed.
 */
const BUSYBOX_SESSION = String.raw`
28198 1795870651.795361 execve("/usr/bin/unshare", ["unshare", "--mount", "--pid", "--fork", "--", "sh", "-c", "mount -t proc proc /tmp/exp/fx/proc && exec chroot /tmp/exp/fx /bin/sh -c \"cd /www/a,b\\(c\\) && cat x ../index.html /etc/alias; ls /nonexist; ../../bin/echo hi\""], 0x7ffeec53a648 /* 35 vars */) = 0
28198 1795870651.796075 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
28198 1795870651.796090 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
28198 1795870651.796890 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f8d6e68ca10) = 28199
28199 1795870651.797143 execve("/usr/sbin/sh", ["sh", "-c", "mount -t proc proc /tmp/exp/fx/proc && exec chroot /tmp/exp/fx /bin/sh -c \"cd /www/a,b\\(c\\) && cat x ../index.html /etc/alias; ls /nonexist; ../../bin/echo hi\""], 0x7ffeb66fba50 /* 35 vars */) = -1 ENOENT (No such file or directory)
28199 1795870651.797155 execve("/usr/bin/sh", ["sh", "-c", "mount -t proc proc /tmp/exp/fx/proc && exec chroot /tmp/exp/fx /bin/sh -c \"cd /www/a,b\\(c\\) && cat x ../index.html /etc/alias; ls /nonexist; ../../bin/echo hi\""], 0x7ffeb66fba50 /* 35 vars */) = 0
28199 1795870651.797756 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
28199 1795870651.797775 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
28199 1795870651.797952 newfstatat(AT_FDCWD</tmp/exp>, "/tmp/exp", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0
28199 1795870651.797969 newfstatat(AT_FDCWD</tmp/exp>, ".", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0
28199 1795870651.798084 newfstatat(AT_FDCWD</tmp/exp>, "/usr/sbin/mount", 0x7ffe9adf02c0, 0) = -1 ENOENT (No such file or directory)
28199 1795870651.798095 newfstatat(AT_FDCWD</tmp/exp>, "/usr/bin/mount", {st_mode=S_IFREG|S_ISUID|0755, st_size=59704, ...}, 0) = 0
28199 1795870651.798108 vfork( <unfinished ...>
28200 1795870651.798149 execve("/usr/bin/mount", ["mount", "-t", "proc", "proc", "/tmp/exp/fx/proc"], 0x55f805f2bc38 /* 35 vars */ <unfinished ...>
28199 1795870651.798316 <... vfork resumed>) = 2 /* 28200 in strace's PID NS */
28200 1795870651.800875 <... execve resumed>) = 0
28200 1795870651.801445 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libmount.so.1", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libmount.so.1.1.0>
28200 1795870651.801462 newfstatat(3</usr/lib/x86_64-linux-gnu/libmount.so.1.1.0>, "", {st_mode=S_IFREG|0644, st_size=404096, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.801500 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libselinux.so.1", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libselinux.so.1>
28200 1795870651.801515 newfstatat(3</usr/lib/x86_64-linux-gnu/libselinux.so.1>, "", {st_mode=S_IFREG|0644, st_size=174312, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.801548 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
28200 1795870651.801563 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.801601 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libblkid.so.1", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0>
28200 1795870651.801618 newfstatat(3</usr/lib/x86_64-linux-gnu/libblkid.so.1.1.0>, "", {st_mode=S_IFREG|0644, st_size=355328, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.801650 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libpcre2-8.so.0", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2>
28200 1795870651.801665 newfstatat(3</usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2>, "", {st_mode=S_IFREG|0644, st_size=629384, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.801943 statfs("/sys/fs/selinux", 0x7ffe2ab0abb0) = -1 ENOENT (No such file or directory)
28200 1795870651.801961 statfs("/selinux", 0x7ffe2ab0abb0) = -1 ENOENT (No such file or directory)
28200 1795870651.801982 openat(AT_FDCWD</tmp/exp>, "/proc/filesystems", O_RDONLY|O_CLOEXEC) = 3</proc/filesystems>
28200 1795870651.802000 newfstatat(3</proc/filesystems>, "", {st_mode=S_IFREG|0444, st_size=0, ...}, AT_EMPTY_PATH) = 0
28200 1795870651.802023 access("/etc/selinux/config", F_OK) = -1 ENOENT (No such file or directory)
28200 1795870651.802713 access("/sys/fs/smackfs", F_OK) = -1 ENOENT (No such file or directory)
28200 1795870651.802728 readlink("/tmp", 0x7ffe2ab09400, 1023) = -1 EINVAL (Invalid argument)
28200 1795870651.802739 readlink("/tmp/exp", 0x7ffe2ab09400, 1023) = -1 EINVAL (Invalid argument)
28200 1795870651.802748 readlink("/tmp/exp/fx", 0x7ffe2ab09400, 1023) = -1 EINVAL (Invalid argument)
28200 1795870651.802757 readlink("/tmp/exp/fx/proc", 0x7ffe2ab09400, 1023) = -1 EINVAL (Invalid argument)
28200 1795870651.802772 newfstatat(AT_FDCWD</tmp/exp>, "/sbin/mount.proc", 0x7ffe2ab088b0, 0) = -1 ENOENT (No such file or directory)
28200 1795870651.802785 newfstatat(AT_FDCWD</tmp/exp>, "/sbin/fs.d/mount.proc", 0x7ffe2ab088b0, 0) = -1 ENOENT (No such file or directory)
28200 1795870651.802795 newfstatat(AT_FDCWD</tmp/exp>, "/sbin/fs/mount.proc", 0x7ffe2ab088b0, 0) = -1 ENOENT (No such file or directory)
28200 1795870651.802809 newfstatat(AT_FDCWD</tmp/exp>, "/run/mount/utab", 0x7ffe2ab099f0, AT_SYMLINK_NOFOLLOW) = -1 ENOENT (No such file or directory)
28200 1795870651.802823 mkdir("/run/mount", 0755) = -1 EEXIST (File exists)
28200 1795870651.802834 newfstatat(AT_FDCWD</tmp/exp>, "/run/mount/utab", 0x7ffe2ab098e0, 0) = -1 ENOENT (No such file or directory)
28200 1795870651.802843 newfstatat(AT_FDCWD</tmp/exp>, "/run/mount", {st_mode=S_IFDIR|0755, st_size=4096, ...}, 0) = 0
28200 1795870651.802859 access("/run/mount", R_OK|W_OK) = 0
28200 1795870651.803352 +++ exited with 0 +++
28199 1795870651.803469 execve("/usr/sbin/chroot", ["chroot", "/tmp/exp/fx", "/bin/sh", "-c", "cd /www/a,b\\(c\\) && cat x ../index.html /etc/alias; ls /nonexist; ../../bin/echo hi"], 0x55f805f2bcf0 /* 35 vars */) = 0
28199 1795870651.804070 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
28199 1795870651.804083 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
28199 1795870651.804754 readlink("/tmp", 0x7ffdc5f0d670, 1023) = -1 EINVAL (Invalid argument)
28199 1795870651.804764 readlink("/tmp/exp", 0x7ffdc5f0d670, 1023) = -1 EINVAL (Invalid argument)
28199 1795870651.804773 readlink("/tmp/exp/fx", 0x7ffdc5f0d670, 1023) = -1 EINVAL (Invalid argument)
28199 1795870651.804784 chroot("/tmp/exp/fx") = 0
28199 1795870651.804795 chdir("/")      = 0
28199 1795870651.804805 execve("/bin/sh", ["/bin/sh", "-c", "cd /www/a,b\\(c\\) && cat x ../index.html /etc/alias; ls /nonexist; ../../bin/echo hi"], 0x7ffdc5f0dc78 /* 35 vars */) = 0
28199 1795870651.805353 readlink("/proc/self/exe", "/bin/busybox", 4096) = 12
28199 1795870651.805436 newfstatat(AT_FDCWD</tmp/exp/fx>, "/tmp/exp", 0x7fffdbb2c360, 0) = -1 ENOENT (No such file or directory)
28199 1795870651.805457 getcwd("/", 4096) = 2
28199 1795870651.805487 chdir("/www/a,b(c)") = 0
28199 1795870651.805505 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x3b311690) = 3 /* 28201 in strace's PID NS */
28201 1795870651.807837 execve("/proc/self/exe", ["cat", "x", "../index.html", "/etc/alias"], 0x3b314198 /* 35 vars */) = 0
28201 1795870651.810887 readlink("/proc/self/exe", "/bin/busybox", 4096) = 12
28201 1795870651.810963 openat(AT_FDCWD</tmp/exp/fx/www/a,b(c)>, "x", O_RDONLY) = 3</tmp/exp/fx/www/a,b(c)/x>
28201 1795870651.811005 openat(AT_FDCWD</tmp/exp/fx/www/a,b(c)>, "../index.html", O_RDONLY) = 3</tmp/exp/fx/www/index.html>
28201 1795870651.811022 openat(AT_FDCWD</tmp/exp/fx/www/a,b(c)>, "/etc/alias", O_RDONLY) = 3</tmp/exp/fx/www/index.html>
28201 1795870651.811106 +++ exited with 0 +++
28199 1795870651.811138 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x3b311690) = 4 /* 28202 in strace's PID NS */
28202 1795870651.813192 newfstatat(AT_FDCWD</tmp/exp/fx/www/a,b(c)>, "/nonexist", 0x7fffdbb2be38, 0) = -1 ENOENT (No such file or directory)
28202 1795870651.813301 +++ exited with 1 +++
28199 1795870651.813314 execve("../../bin/echo", ["../../bin/echo", "hi"], 0x3b314198 /* 35 vars */) = 0
28199 1795870651.813851 readlink("/proc/self/exe", "/bin/busybox", 4096) = 12
28199 1795870651.813922 +++ exited with 0 +++
28198 1795870651.814153 +++ exited with 0 +++
`;

/**
 * Captured on this machine: a static C program (`edge`) run by `strace -f -q -ttt -y
 * --pidns-translation -e trace=%file,%process,fchdir,getcwd,bind,connect,socket unshare --mount
 * --pid --fork chroot /tmp/exp/root /bin/edge`. It opens /etc as a dirfd and works relative to it
 * (non-UTF-8 name, renameat, linkat, unlinkat), symlinks and readlinks, fchdir()s, binds and
 * connects AF_UNIX sockets (one abstract), chdir()s in a thread (CLONE_FS), vfork()s, posix_spawn()s
 * (clone3 CLONE_VFORK) and fork()s into execveat(dirfd, "true").
 */
const EDGE_PROGRAM = String.raw`
15904 1795870024.934592 execve("/usr/bin/unshare", ["unshare", "--mount", "--pid", "--fork", "chroot", "/tmp/exp/root", "/bin/edge"], 0x7ffece702d80 /* 35 vars */) = 0
15904 1795870024.935848 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
15904 1795870024.935868 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
15904 1795870024.937525 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7fc13c253a10) = 15905
15905 1795870024.937790 mount("none", "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0
15904 1795870024.937815 wait4(15905,  <unfinished ...>
15905 1795870024.937946 execve("/usr/sbin/chroot", ["chroot", "/tmp/exp/root", "/bin/edge"], 0x7fff324accb8 /* 35 vars */) = 0
15905 1795870024.939025 openat(AT_FDCWD</tmp/exp>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
15905 1795870024.939042 newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
15905 1795870024.939919 readlink("/tmp", 0x7ffc6874a0e0, 1023) = -1 EINVAL (Invalid argument)
15905 1795870024.939931 readlink("/tmp/exp", 0x7ffc6874a0e0, 1023) = -1 EINVAL (Invalid argument)
15905 1795870024.939942 readlink("/tmp/exp/root", 0x7ffc6874a0e0, 1023) = -1 EINVAL (Invalid argument)
15905 1795870024.939954 chroot("/tmp/exp/root") = 0
15905 1795870024.939968 chdir("/")      = 0
15905 1795870024.939980 execve("/bin/edge", ["/bin/edge"], 0x7ffc6874a6d8 /* 35 vars */) = 0
15905 1795870024.940636 readlink("/proc/self/exe", 0x7ffce86c8d40, 4096) = -1 ENOENT (No such file or directory)
15905 1795870024.940684 mkdir("/tmp", 0755) = 0
15905 1795870024.940910 chdir("/tmp")   = 0
15905 1795870024.940925 openat(AT_FDCWD</tmp/exp/root/tmp>, "/etc", O_RDONLY|O_DIRECTORY) = 3</tmp/exp/root/etc>
15905 1795870024.940948 newfstatat(3</tmp/exp/root/etc>, "passwd", 0x7ffce86c9c90, 0) = -1 ENOENT (No such file or directory)
15905 1795870024.941080 faccessat2(3</tmp/exp/root/etc>, "group", R_OK, 0) = -1 ENOENT (No such file or directory)
15905 1795870024.941098 openat(3</tmp/exp/root/etc>, "\200weird\377\n\"q", O_WRONLY|O_CREAT, 0644) = 4</tmp/exp/root/etc/\200weird\377\n\"q>
15905 1795870024.941134 renameat(3</tmp/exp/root/etc>, "\200weird\377\n\"q", AT_FDCWD</tmp/exp/root/tmp>, "moved") = 0
15905 1795870024.941158 symlinkat("target", AT_FDCWD</tmp/exp/root/tmp>, "sl") = 0
15905 1795870024.941178 readlinkat(AT_FDCWD</tmp/exp/root/tmp>, "sl", "target", 100) = 6
15905 1795870024.941192 linkat(AT_FDCWD</tmp/exp/root/tmp>, "moved", 3</tmp/exp/root/etc>, "hard", 0) = 0
15905 1795870024.941208 unlinkat(3</tmp/exp/root/etc>, "hard", 0) = 0
15905 1795870024.941223 statx(AT_FDCWD</tmp/exp/root/tmp>, "rel/missing", AT_STATX_SYNC_AS_STAT, STATX_ALL, 0x7ffce86c9b20) = -1 ENOENT (No such file or directory)
15905 1795870024.941238 fchdir(3</tmp/exp/root/etc>) = 0
15905 1795870024.941249 access("passwd", F_OK) = -1 ENOENT (No such file or directory)
15905 1795870024.941261 socket(AF_UNIX, SOCK_STREAM, 0) = 4<socket:[96510]>
15905 1795870024.941285 bind(4<socket:[96510]>, {sa_family=AF_UNIX, sun_path="/tmp/sock"}, 110) = 0
15905 1795870024.941311 socket(AF_UNIX, SOCK_STREAM, 0) = 5<socket:[96511]>
15905 1795870024.941324 connect(5<socket:[96511]>, {sa_family=AF_UNIX, sun_path="/tmp/sock"}, 110) = -1 ECONNREFUSED (Connection refused)
15905 1795870024.941343 socket(AF_UNIX, SOCK_STREAM, 0) = 6<socket:[96513]>
15905 1795870024.941362 connect(6<socket:[96513]>, {sa_family=AF_UNIX, sun_path=@"abstract"}, 11) = -1 ECONNREFUSED (Connection refused)
15905 1795870024.941407 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7fbc4a8bf990, parent_tid=0x7fbc4a8bf990, exit_signal=0, stack=0x7fbc4a0bf000, stack_size=0x800300, tls=0x7fbc4a8bf6c0} => {parent_tid=[2 /* 15906 in strace's PID NS */]}, 88) = 2 /* 15906 in strace's PID NS */
15906 1795870024.944038 chdir("/www")   = 0
15906 1795870024.944236 openat(AT_FDCWD</tmp/exp/root/www>, "index.html", O_RDONLY) = 7</tmp/exp/root/www/index.html>
15906 1795870024.944386 exit(0)         = ?
15906 1795870024.944575 +++ exited with 0 +++
15905 1795870024.944580 getcwd("/www", 100) = 5
15905 1795870024.944644 newfstatat(AT_FDCWD</tmp/exp/root/www>, "relative-after-thread-chdir", 0x7ffce86c9c90, 0) = -1 ENOENT (No such file or directory)
15905 1795870024.944820 vfork( <unfinished ...>
15907 1795870024.944934 execve("/bin/echo", ["echo", "vforked"], 0x7ffce86c9f28 /* 35 vars */ <unfinished ...>
15905 1795870024.945378 <... vfork resumed>) = 3 /* 15907 in strace's PID NS */
15907 1795870024.947244 <... execve resumed>) = 0
15905 1795870024.947255 wait4(3 /* 15907 in strace's PID NS */,  <unfinished ...>
15907 1795870024.947820 readlink("/proc/self/exe", 0x7fff03481670, 4096) = -1 ENOENT (No such file or directory)
15907 1795870024.947910 exit_group(0)   = ?
15907 1795870024.948011 +++ exited with 0 +++
15905 1795870024.948083 <... wait4 resumed>NULL, 0, NULL) = 3
15905 1795870024.949585 clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7fbc4a0b6000, stack_size=0x9000}, 88 <unfinished ...>
15908 1795870024.965245 execve("/bin/cat", ["cat", "/www/index.html"], 0x7ffce86c9f28 /* 35 vars */ <unfinished ...>
15905 1795870024.965547 <... clone3 resumed>) = 4 /* 15908 in strace's PID NS */
15908 1795870024.967243 <... execve resumed>) = 0
15905 1795870024.967311 wait4(4 /* 15908 in strace's PID NS */,  <unfinished ...>
15908 1795870024.968661 readlink("/proc/self/exe", 0x7ffd37341b60, 4096) = -1 ENOENT (No such file or directory)
15908 1795870024.968846 openat(AT_FDCWD</tmp/exp/root/www>, "/www/index.html", O_RDONLY) = 7</tmp/exp/root/www/index.html>
15908 1795870024.969205 exit_group(0)   = ?
15908 1795870024.969485 +++ exited with 0 +++
15905 1795870024.969511 <... wait4 resumed>NULL, 0, NULL) = 4
15905 1795870024.971637 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x30a77690) = 5 /* 15909 in strace's PID NS */
15909 1795870024.973363 openat(AT_FDCWD</tmp/exp/root/www>, "/bin", O_RDONLY|O_DIRECTORY <unfinished ...>
15905 1795870024.973408 wait4(-1,  <unfinished ...>
15909 1795870024.973517 <... openat resumed>) = 7</tmp/exp/root/bin>
15909 1795870024.973590 execveat(7</tmp/exp/root/bin>, "true", ["true"], 0x7ffce86c9f28 /* 35 vars */, 0) = 0
15909 1795870024.974528 readlink("/proc/self/exe", 0x7ffe81a6e450, 4096) = -1 ENOENT (No such file or directory)
15909 1795870024.974723 exit_group(0)   = ?
15909 1795870024.974894 +++ exited with 0 +++
15905 1795870024.974954 <... wait4 resumed>NULL, 0, NULL) = 5
15905 1795870024.976404 exit_group(0)   = ?
15905 1795870024.976536 +++ exited with 0 +++
15904 1795870024.976617 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 15905
15904 1795870024.976788 exit_group(0)   = ?
15904 1795870024.977132 +++ exited with 0 +++
`;

/**
 * Kept (AIM_KEEP_TRACE) from a failing run of the old sandbox, whose strace ran outside the
 * workload's pid namespace: a SIGCHLD-ignoring server (`forker`) forks a child per file. Child 619
 * opened /data/f81 and exited, was reaped at once, and only then did its parent's clone()
 * return (lines of other children trimmed), so strace's /proc search could not translate 109 into 619 any more. The parser used to
 * drop 619's lines as those of a host-side process.
 */
const LOST_CHILD = String.raw`
21359 1796593371.128261 chroot("/tmp/trace-repro/img3/root") = 0
21359 1796593371.128401 chdir("/")      = 0
21359 1796593371.128563 execve("/bin/forker", ["/bin/forker", "200"], 0x7ffd976e3cb0 /* 2 vars */) = 0
21359 1796593374.236701 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
21359 1796593374.238307 <... clone resumed>, child_tidptr=0x1fcdd650) = 108 /* 602 in strace's PID NS */
602   1796593374.242553 openat(AT_FDCWD</tmp/trace-repro/img3/root>, "/data/f80", O_RDONLY <unfinished ...>
21359 1796593374.242701 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>
602   1796593374.243353 <... openat resumed>) = 3</tmp/trace-repro/img3/root/data/f80>
619   1796593374.244512 openat(AT_FDCWD</tmp/trace-repro/img3/root>, "/data/f81", O_RDONLY <unfinished ...>
602   1796593374.244591 +++ exited with 0 +++
619   1796593374.244659 <... openat resumed>) = 3</tmp/trace-repro/img3/root/data/f81>
619   1796593374.245073 +++ exited with 0 +++
21359 1796593374.245113 <... clone resumed>, child_tidptr=0x1fcdd650) = 109
21359 1796593374.261685 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x1fcdd650) = 110 /* 800 in strace's PID NS */
800   1796593374.268919 openat(AT_FDCWD</tmp/trace-repro/img3/root>, "/data/f82", O_RDONLY) = 3</tmp/trace-repro/img3/root/data/f82>
800   1796593374.269919 +++ exited with 0 +++
21359 1796593374.300000 +++ exited with 0 +++
`;

const lines = (text: string) => text.trim().split('\n').map((l) => l.trim()).join('\n');
const parse = (text: string, options = { root: '/R' }) => parseStrace(lines(text), options);
const paths = (t: Trace) => [...t.paths.keys()];

describe('strace syntax', () => {
  it('reads complete, unfinished, resumed and notice lines', () => {
    expect(parseLine('15 1795870024.940925 openat(AT_FDCWD</r>, "/etc", O_RDONLY) = 3</r/etc>')).toEqual({
      pid: 15,
      time: 1795870024.940925,
      body: { kind: 'call', name: 'openat', text: 'openat(AT_FDCWD</r>, "/etc", O_RDONLY) = 3</r/etc>' },
    });
    expect(parseLine('15 1.5 wait4(-1,  <unfinished ...>')?.body).toEqual({ kind: 'unfinished', name: 'wait4', text: 'wait4(-1, ' });
    expect(parseLine('15 1.5 <... wait4 resumed>NULL, 0, NULL) = 3')?.body).toEqual({ kind: 'resumed', name: 'wait4', text: 'NULL, 0, NULL) = 3' });
    expect(parseLine('15 1.5 +++ exited with 0 +++')?.body).toEqual({ kind: 'exit', detail: 'exited with 0' });
    expect(parseLine('15 1.5 --- SIGCHLD {si_signo=SIGCHLD} ---')?.body).toEqual({ kind: 'other' });
    expect(parseLine('15 12:00:01.250000 chdir("/") = 0')?.time).toBe(43201.25);
    expect(parseLine('strace: Process 15 attached')).toBeUndefined();
  });

  it('splits arguments around decorations, strings, brackets and comments', () => {
    expect(splitCall('openat(AT_FDCWD</r/a,b(c)>, "x, \\"y)", O_RDONLY) = 3</r/a,b(c)/x, "y)>')).toEqual({
      args: ['AT_FDCWD</r/a,b(c)>', '"x, \\"y)"', 'O_RDONLY'],
      ret: '3</r/a,b(c)/x, "y)>',
    });
    expect(splitCall('execve("/bin/sh", ["sh", "-c", "a, (b"], 0x7ff /* 35 vars */) = 0')?.args).toEqual([
      '"/bin/sh"',
      '["sh", "-c", "a, (b"]',
      '0x7ff /* 35 vars */',
    ]);
    expect(splitCall('vfork() = 3 /* 15907 in strace\'s PID NS */')).toEqual({ args: [], ret: "3 /* 15907 in strace's PID NS */" });
    expect(splitCall('openat(AT_FDCWD, "/x", O_RDONLY')).toBeUndefined();
  });

  it('reads return values', () => {
    expect(parseReturn('0')).toEqual({ value: 0 });
    expect(parseReturn('-1 ENOENT (No such file or directory)')).toEqual({ value: -1, errno: 'ENOENT' });
    expect(parseReturn('3</tmp/r/a\\76b>')).toEqual({ value: 3, fdPath: '/tmp/r/a\\76b' });
    expect(parseReturn("2 /* 15906 in strace's PID NS */")).toEqual({ value: 2, translatedPid: 15906 });
    expect(parseReturn('? <unavailable>')).toEqual({});
    expect(parseReturn('? ERESTARTSYS (To be restarted if SA_RESTART is set)')).toEqual({ errno: 'ERESTARTSYS' });
  });

  it('decodes escapes to raw bytes', () => {
    expect(decodeEscaped('\\200weird\\377\\n\\"q')).toEqual(Buffer.from([0x80, ...Buffer.from('weird'), 0xff, 0x0a, 0x22, 0x71]));
    expect(decodeEscaped('\\x41\\t\\\\\\0012')).toEqual(Buffer.from([0x41, 0x09, 0x5c, 0x01, 0x32]));
    expect(decodeEscaped('a\\76b')).toEqual(Buffer.from('a>b'));
    expect(decodeEscaped('é')).toEqual(Buffer.from('é'));
    expect(parseStringArg('"/etc/x"...')).toBeUndefined();
    expect(parseStringArg('NULL')).toBeUndefined();
    expect(parseStringArg('""')).toEqual(Buffer.alloc(0));
    expect(parseFdArg('AT_FDCWD</r/www>')).toEqual({ fd: 'AT_FDCWD', path: '/r/www' });
    expect(parseFdArg('3')).toEqual({ fd: 3, path: undefined });
  });
});

describe('parsing a real busybox session in a chroot', () => {
  const t = parseStrace(BUSYBOX_SESSION, { root: '/tmp/exp/fx' });

  it('ignores everything before the chroot: unshare, sh, mount and the chroot program itself', () => {
    for (const host of ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/bin/mount', '/usr/sbin/chroot', '/run/mount/utab', '/sys/fs/selinux', '/tmp/exp/fx', '/tmp/exp/fx/proc']) {
      expect(t.paths.has(host), host).toBe(false);
    }
  });

  it('records what the workload used, resolved against its cwd', () => {
    expect(t.paths.get('/www/a,b(c)/x')).toMatchObject({ syscalls: ['openat'], ok: true, errors: [], exec: false, wrote: false, firstPid: 28201, firstSeen: 1795870651.810963 });
    expect(t.paths.get('/www/index.html')).toMatchObject({ ok: true, firstPid: 28201 });
    expect(t.paths.get('/www/index.html')?.via).toBeUndefined();
    expect(t.paths.get('/etc/alias')).toMatchObject({ syscalls: ['openat'], ok: true });
    expect(t.paths.get('/www/a,b(c)')).toMatchObject({ syscalls: ['chdir'], ok: true });
    expect(t.paths.get('/nonexist')).toMatchObject({ ok: false, errors: ['ENOENT'], firstPid: 28202 });
    // busybox looks for $PWD, a host path, inside the image: a real (failed) lookup of the workload
    expect(t.paths.get('/tmp/exp')).toMatchObject({ ok: false, errors: ['ENOENT'] });
  });

  it('records execs, including busybox re-executing itself through /proc/self/exe', () => {
    expect(t.execs).toEqual(['/bin/sh', '/bin/echo']);
    expect(t.paths.get('/bin/sh')).toMatchObject({ exec: true, syscalls: ['execve'] });
    expect(t.paths.get('/proc/self/exe')).toMatchObject({ exec: true, syscalls: ['execve', 'readlink'] });
    expect(t.paths.get('/bin/echo')).toMatchObject({ exec: true, firstPid: 28199 });
    expect(t.processes).toBe(3);
    expect(t.unresolved).toBe(0);
  });
});

describe('parsing a real trace of a program exercising the edge cases', () => {
  const t = parseStrace(EDGE_PROGRAM, { root: '/tmp/exp/root' });

  it('resolves *at() calls against their dirfd and keeps non-UTF-8 names byte-exact', () => {
    const weird = [...t.paths.keys()].find((p) => p.startsWith('/etc/%80'))!;
    expect(decodePath(weird)).toEqual(Buffer.concat([Buffer.from('/etc/'), Buffer.from([0x80]), Buffer.from('weird'), Buffer.from([0xff]), Buffer.from('\n"q')]));
    expect(t.paths.get(weird)).toMatchObject({ syscalls: ['openat', 'renameat'], ok: true, wrote: true });
    expect(t.paths.get('/tmp/moved')).toMatchObject({ syscalls: ['linkat', 'renameat'], wrote: true });
    expect(t.paths.get('/etc/hard')).toMatchObject({ syscalls: ['linkat', 'unlinkat'], wrote: true });
    expect(t.paths.get('/etc/group')).toMatchObject({ syscalls: ['faccessat2'], ok: false, errors: ['ENOENT'] });
    expect(t.paths.get('/tmp/sl')).toMatchObject({ syscalls: ['readlinkat', 'symlinkat'] });
    expect(t.paths.has('/tmp/target')).toBe(false); // a symlink's text is not a path it touches
    expect(t.paths.get('/tmp/rel/missing')).toMatchObject({ syscalls: ['statx'], errors: ['ENOENT'] });
  });

  it('follows fchdir, and a chdir made by a thread sharing the cwd (CLONE_FS)', () => {
    expect(t.paths.get('/etc/passwd')).toMatchObject({ syscalls: ['access', 'newfstatat'], ok: false });
    expect(t.paths.get('/www/index.html')).toMatchObject({ ok: true, firstPid: 15906 });
    expect(t.paths.has('/www/relative-after-thread-chdir')).toBe(true);
  });

  it('records AF_UNIX socket paths but not abstract ones', () => {
    expect(t.paths.get('/tmp/sock')).toMatchObject({ syscalls: ['bind', 'connect'], ok: true, wrote: true, errors: ['ECONNREFUSED'] });
    expect([...t.paths.keys()].some((p) => p.includes('abstract'))).toBe(false);
  });

  it('follows vfork, posix_spawn (clone3 CLONE_VFORK), fork and execveat; threads are not processes', () => {
    expect(t.execs).toEqual(['/bin/edge', '/bin/echo', '/bin/cat', '/bin/true']);
    expect(t.paths.get('/bin/echo')).toMatchObject({ firstPid: 15907, exec: true });
    expect(t.paths.get('/bin/true')).toMatchObject({ syscalls: ['execveat'], exec: true });
    expect(t.processes).toBe(4);
    expect(t.unresolved).toBe(0);
    expect(paths(t).some((p) => p.startsWith('/lib/') || p.startsWith('/usr/'))).toBe(false);
  });
});

describe('hand-written edge cases', () => {
  it('joins unfinished and resumed calls interleaved with other processes', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=SIGCHLD) = 2
      1 1.2 openat(AT_FDCWD, "/etc/a", O_RDONLY <unfinished ...>
      2 1.3 openat(AT_FDCWD, "/etc/b", O_RDONLY <unfinished ...>
      1 1.4 <... openat resumed>) = -1 ENOENT (No such file or directory)
      2 1.5 <... openat resumed>) = 3
    `);
    expect(t.paths.get('/etc/a')).toMatchObject({ ok: false, errors: ['ENOENT'], firstPid: 1, firstSeen: 1.2 });
    expect(t.paths.get('/etc/b')).toMatchObject({ ok: true, firstPid: 2, firstSeen: 1.3 });
  });

  it('gives a child seen before its parent\'s clone returned the parent\'s root and cwd', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 chdir("/srv") = 0
      1 1.2 vfork( <unfinished ...>
      7 1.3 open("data", O_RDONLY) = 3
      7 1.4 execve("bin/app", ["app"], 0x1 /* 1 var */ <unfinished ...>
      1 1.5 <... vfork resumed>) = 2 /* 7 in strace's PID NS */
      7 1.6 <... execve resumed>) = 0
    `);
    expect(paths(t)).toEqual(['/srv', '/srv/bin/app', '/srv/data']);
    expect(t.execs).toEqual(['/srv/bin/app']);
    expect(t.processes).toBe(2);
  });

  it('copies the cwd at fork but shares it between CLONE_FS threads', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 chdir("/a") = 0
      1 1.2 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD) = 2
      2 1.3 chdir("/b") = 0
      1 1.4 stat("x", 0x1) = 0
      1 1.5 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, exit_signal=0}, 88) = 3
      3 1.6 chdir("/c") = 0
      1 1.7 stat("y", 0x1) = 0
      2 1.8 stat("z", 0x1) = 0
    `);
    expect(paths(t)).toEqual(['/a', '/a/x', '/b', '/b/z', '/c', '/c/y']);
    expect(t.processes).toBe(2);
  });

  it('keeps .. inside the root and follows a nested chroot inside the image', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 open("/../../etc/passwd", O_RDONLY) = 3
      1 1.2 chroot("/var/empty") = 0
      1 1.3 open("/../x", O_RDONLY) = -1 ENOENT (No such file or directory)
      1 1.4 chdir("/") = 0
      1 1.5 stat("./sub/../y", 0x1) = 0
    `);
    expect(paths(t)).toEqual(['/etc/passwd', '/var/empty', '/var/empty/x', '/var/empty/y']);
  });

  it('ignores a chroot somewhere else than the image root, and everything of host processes', () => {
    const t = parse(`
      1 1.0 open("/etc/host", O_RDONLY) = 3
      1 1.1 chroot("/other") = 0
      1 1.2 open("/etc/elsewhere", O_RDONLY) = 3
    `);
    expect(t.paths.size).toBe(0);
    expect(t.processes).toBe(0);
  });

  it('enters at a relative chroot resolved against the host cwd', () => {
    const t = parse(`
      1 1.0 chdir("/") = 0
      1 1.1 newfstatat(AT_FDCWD</>, "R", {st_mode=S_IFDIR|0755, ...}, 0) = 0
      1 1.2 chroot("R") = 0
      1 1.3 chdir("/") = 0
      1 1.4 open("/in", O_RDONLY) = 3
    `);
    expect(paths(t)).toEqual(['/', '/in']);
  });

  it('records where an open really landed (-y), and the real program behind /proc/self/exe', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 execve("/usr/bin/app", ["app"], 0x1 /* 1 var */) = 0
      1 1.2 openat(AT_FDCWD</R>, "/lib/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</R/usr/lib/libc.so.6>
      1 1.3 openat(AT_FDCWD</R>, "/proc/self/status", O_RDONLY) = 3</R/proc/1/status>
      1 1.4 openat(AT_FDCWD</R>, "/var/log/app.log", O_WRONLY|O_CREAT|O_APPEND, 0644) = 4</R/var/log/app.log>
      1 1.5 clone(child_stack=NULL, flags=SIGCHLD) = 2
      2 1.6 execve("/proc/self/exe", ["app", "--worker"], 0x1 /* 1 var */) = 0
    `);
    expect(t.paths.get('/usr/lib/libc.so.6')).toMatchObject({ ok: true, via: '/lib/libc.so.6', syscalls: ['openat'] });
    expect(t.paths.get('/lib/libc.so.6')?.via).toBeUndefined();
    expect(t.paths.has('/proc/1/status')).toBe(false);
    expect(t.paths.get('/var/log/app.log')).toMatchObject({ wrote: true });
    expect(t.paths.get('/lib/libc.so.6')).toMatchObject({ wrote: false });
    expect(t.paths.get('/usr/bin/app')).toMatchObject({ exec: true, firstSeen: 1.1 });
    expect(t.execs).toEqual(['/usr/bin/app']);
  });

  it('counts relative paths against an unknown directory as unresolved', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 openat(5, "rel", O_RDONLY) = 3
      1 1.2 openat(6</elsewhere>, "rel", O_RDONLY) = 3
      1 1.3 open("rel", O_RDONLY) = 3
    `);
    expect(t.paths.size).toBe(0);
    expect(t.unresolved).toBe(3);
  });

  it('forgets a pid at exit so a reused pid starts from its own parent', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=SIGCHLD) = 2
      2 1.2 chroot("/jail") = 0
      2 1.3 +++ exited with 0 +++
      9 1.4 open("/host-side", O_RDONLY) = 3
      9 1.5 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      2 1.6 open("/file", O_RDONLY) = 3
      9 1.7 <... clone resumed>) = 2
    `);
    expect(paths(t)).toEqual(['/jail']);
  });

  it('keeps what a child did when its parent\'s clone() returns after the child is gone and untranslated', () => {
    const t = parseStrace(LOST_CHILD, { root: '/tmp/trace-repro/img3/root' });
    for (const f of ['/data/f80', '/data/f81', '/data/f82']) expect(t.paths.get(f), f).toMatchObject({ ok: true, syscalls: ['openat'] });
    expect(t.untied).toBe(1);
    expect(t.processes).toBe(5); // forker, 602, 619, 800 and the 109 that clone() named
    expect(t.complete).toBe(true);
  });

  it('ties a child to its parent by the pid clone() returned when strace shares its pid namespace', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 chdir("/srv") = 0
      1 1.2 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      7 1.3 open("data", O_RDONLY) = 3
      7 1.4 +++ exited with 0 +++
      1 1.5 <... clone resumed>) = 7
      1 1.6 +++ exited with 0 +++
    `);
    expect(paths(t)).toEqual(['/srv', '/srv/data']);
    expect(t).toMatchObject({ untied: 0, processes: 2, complete: true });
  });

  it('places a child whose parent stays unknown outside when a host-side process could have been it', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      2 1.1 open("/host", O_RDONLY) = 3
      1 1.2 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      2 1.3 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      9 1.4 open("/either", O_RDONLY) = 3
      1 1.5 <... clone resumed>) = 70
      2 1.6 <... clone resumed>) = 71
    `);
    expect(paths(t)).toEqual([]);
    expect(t.untied).toBe(1);
  });

  it('keeps two processes apart that had the same pid, by strace\'s exit notices', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      5 1.2 chroot("/jail") = 0
      5 1.3 +++ killed by SIGKILL +++
      1 1.4 <... clone resumed>) = 5
      1 1.5 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      5 1.6 open("/etc/x", O_RDONLY) = 3
      5 1.7 +++ exited with 0 +++
      1 1.8 <... clone resumed>) = 5
      1 1.9 +++ exited with 0 +++
    `);
    // the second 5 is a fresh fork of 1, not the first 5 that chrooted into /jail
    expect(paths(t)).toEqual(['/etc/x', '/jail']);
    expect(t.complete).toBe(true);
  });

  it('tells a complete trace from one its tracer left early, and counts CLONE_UNTRACED children', () => {
    expect(parse('').complete).toBe(false);
    const cut = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=SIGCHLD) = 2
      2 1.2 open("/x", O_RDONLY) = 3
      1 1.3 +++ exited with 0 +++
    `);
    expect(cut.complete).toBe(false);
    const thread = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=0x1, flags=CLONE_VM|CLONE_UNTRACED|SIGCHLD) = 2
      1 1.2 clone3({flags=CLONE_VM|CLONE_FS|CLONE_THREAD|CLONE_SIGHAND, exit_signal=0}, 88) = 3
      3 1.3 execve("/bin/next", ["next"], 0x1 /* 1 var */ <unfinished ...>
      1 1.4 +++ superseded by execve in pid 3 +++
      1 1.5 <... execve resumed>) = 0
      1 1.6 +++ exited with 0 +++
    `);
    expect(thread).toMatchObject({ complete: true, untraced: 1 });
  });

  it('skips restarted calls, cut strings and calls killed before returning', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 open("/fifo", O_RDONLY) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)
      1 1.2 open("/long"..., O_RDONLY) = 3
      1 1.3 open("/blocked", O_RDONLY <unfinished ...>
      1 1.4 +++ killed by SIGKILL +++
      2 1.5 open("/x", O_RDONLY <unfinished ...>
    `, { root: '/R' });
    expect(t.paths.has('/fifo')).toBe(false);
    expect(t.paths.has('/long')).toBe(false);
    expect(t.paths.has('/blocked')).toBe(false);
    expect(t.paths.size).toBe(0);
  });

  it('records a call whose result strace never saw as attempted, neither ok nor failed', () => {
    const p = new StraceParser({ insideFromStart: true });
    p.feed('4 2.0 open("/run/fifo", O_RDONLY <unfinished ...>');
    const t = p.finish();
    expect(t.paths.get('/run/fifo')).toMatchObject({ ok: false, errors: [] });
    expect(t.processes).toBe(1);
  });

  it('moves an execve begun by a thread to the leader it supersedes', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=CLONE_VM|CLONE_FS|CLONE_THREAD|CLONE_SIGHAND) = 2
      2 1.2 execve("/bin/next", ["next"], 0x1 /* 1 var */ <unfinished ...>
      1 1.3 +++ superseded by execve in pid 2 +++
      1 1.4 <... execve resumed>) = 0
    `);
    expect(t.execs).toEqual(['/bin/next']);
  });

  it('takes a thread\'s execve as done once it supersedes the leader, whatever result strace prints', () => {
    // captured with --seccomp-bpf (strace 6.1): the leader's "resumed" result is garbage
    const t = parse(`
      26229 1.0 chroot("/R") = 0
      26229 1.1 execve("/bin/tracee", ["/bin/tracee", "thread-exec"], 0x7fff53663860 /* 39 vars */) = 0
      27167 1.2 execve("/bin/next", ["next", "open", "thread-exec"], 0x7ffe31062a80 /* 39 vars */ <unfinished ...>
      27154 1.3 +++ exited with 0 +++
      26229 1.4 +++ superseded by execve in pid 27167 +++
      26229 1.5 <... execve resumed>)             = -1 (errno 18446744073709551359)
      26229 1.6 +++ exited with 0 +++
    `);
    expect(t.paths.get('/bin/next')).toMatchObject({ ok: true, exec: true, errors: [] });
    expect(t.execs).toEqual(['/bin/tracee', '/bin/next']);
  });

  it('a thread that execs before its clone returned: the notice makes it the leader\'s thread, and its execve counts', () => {
    // captured (strace 6.1, loaded machine): the leader's clone3 never returned a pid for thread 34
    const t = parse(`
      32 1.0 chroot("/R") = 0
      32 1.1 execve("/bin/tracee", ["/bin/tracee", "thread-exec"], 0x7ffe /* 2 vars */) = 0
      32 1.2 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, child_tid=0x1, parent_tid=0x1} => {parent_tid=[33]}, 88) = 33
      32 1.3 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, child_tid=0x2, parent_tid=0x2} <unfinished ...>
      34 1.4 execve("/bin/tracee-thread", ["tracee", "open", "thread-exec"], 0x7fff /* 2 vars */ <unfinished ...>
      33 1.5 +++ exited with 0 +++
      32 1.6 <... clone3 resumed> <unfinished ...>) = ?
      32 1.7 +++ superseded by execve in pid 34 +++
      32 1.8 <... execve resumed>) = 0
      32 1.9 openat(AT_FDCWD, "/data/thread-exec", O_RDONLY) = 3
      32 2.0 +++ exited with 0 +++
    `);
    expect(t.paths.get('/bin/tracee-thread')).toMatchObject({ ok: true, exec: true, errors: [] });
    expect(t.paths.get('/data/thread-exec')).toMatchObject({ ok: true });
    expect(t.execs).toEqual(['/bin/tracee', '/bin/tracee-thread']);
  });

  it('sets the cwd from getcwd and keeps traces without chroot with insideFromStart', () => {
    const t = parseStrace(lines(`
      1 1.0 getcwd("/srv/app", 4096) = 9
      1 1.1 open("conf.yml", O_RDONLY) = 3
    `), { insideFromStart: true });
    expect(paths(t)).toEqual(['/srv/app/conf.yml']);
  });

  it('merges traces: earliest sighting wins, flags and syscalls unite', () => {
    const a = parse(`
      1 2.0 chroot("/R") = 0
      1 2.1 open("/etc/a", O_RDONLY) = -1 ENOENT (No such file or directory)
      1 2.2 execve("/bin/x", ["x"], 0x1 /* 0 vars */) = 0
    `);
    const b = parse(`
      5 1.0 chroot("/R") = 0
      5 1.5 creat("/etc/a", 0644) = 3
      5 1.6 execve("/bin/y", ["y"], 0x1 /* 0 vars */) = 0
    `);
    const m = mergeTraces(a, b);
    expect(m.paths.get('/etc/a')).toMatchObject({ syscalls: ['creat', 'open'], ok: true, errors: ['ENOENT'], wrote: true, firstPid: 5, firstSeen: 1.5 });
    expect(m.execs).toEqual(['/bin/x', '/bin/y']);
    expect(m.processes).toBe(2);
    expect(a.paths.get('/etc/a')?.syscalls).toEqual(['open']);
  });
});

describe('strace flags', () => {
  const hasStrace = (() => {
    try {
      execFileSync('strace', ['-V'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasStrace)('are accepted by this strace, and its output parses', () => {
    const dir = mkdtempSync(join(tmpdir(), 'aim-strace-'));
    try {
      const out = join(dir, 'trace');
      execFileSync('strace', [...straceFlags(out), '/bin/sh', '-c', 'cd /etc && cat hostname >/dev/null; ls /no-such 2>/dev/null; true'], { stdio: 'ignore' });
      const t = parseStrace(readFileSync(out, 'latin1'), { insideFromStart: true });
      expect(t.paths.get('/etc/hostname')).toMatchObject({ ok: true, syscalls: ['openat'] });
      expect(t.paths.get('/no-such')).toMatchObject({ ok: false, errors: ['ENOENT'] });
      expect(t.execs[0]).toBe('/bin/sh');
      expect(t.processes).toBeGreaterThanOrEqual(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasStrace || arch() !== 'x64')('name only syscalls strace knows (no typos), on x86-64', () => {
    const notOnX64 = new Set(['stat64', 'lstat64', 'fstatat64', 'fchmodat2']);
    const names = STRACE_SYSCALLS.filter((s) => !notOnX64.has(s));
    expect(() => execFileSync('strace', ['-o', '/dev/null', '-e', `trace=${names.join(',')}`, 'true'], { stdio: 'pipe' })).not.toThrow();
  });
});

describe('robustness', () => {
  it('ends on malformed input: a clone resumed as something else, garbage lines', () => {
    const t = parse(`
      1 1.0 chroot("/R") = 0
      1 1.1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
      2 1.2 open("/child", O_RDONLY) = 3
      1 1.3 <... wait4 resumed>) = 0
      garbage without a pid
      3 1.4 this is not a call
      2 1.5 open("/child2" <unfinished ...>
    `);
    // the child's clone never returned: its only possible parent was inside, so it is too
    expect(paths(t)).toEqual(['/child', '/child2']);
    expect(t.untied).toBe(2); // 2, and 3 of the garbage line
    expect(t.complete).toBe(false);
  });

  it('parses a 100,000-line trace into one record per path', () => {
    const body: string[] = ['1 1.0 chroot("/R") = 0'];
    for (let i = 0; i < 100_000; i++) body.push(`1 ${1 + i / 1e6} openat(AT_FDCWD</R/srv>, "f${i % 5000}", O_RDONLY) = -1 ENOENT (No such file or directory)`);
    const t = parseStrace(body.join('\n'), { root: '/R' });
    expect(t.paths.size).toBe(5000);
    expect(t.paths.get('/srv/f42')).toMatchObject({ errors: ['ENOENT'], firstSeen: 1.000042 });
  });
});
