/* steps.h — the child's checklist steps: one list, read by C++ (plan.h's enum class Step), by C
 * (init.c, which is freestanding and cannot include plan.h) and, through the addon's `steps`
 * export, by TypeScript (lib/native.ts stepNames, which errors.ts turns into `.step` and
 * `.syscall`). A step's number travels in a ChildError record from the child (or stockade-init,
 * or the parent) to the addon; numbers are never reused or reordered, new steps go at the end.
 *
 * X(number, Name, "name", "syscall"): Name is the identifier (Step::kName in C++, kStepName in
 * C), "name" what JavaScript sees as error.step, "syscall" the call named in the message.
 * Plain C preprocessor, so that both compilers read the same text. */
#ifndef STOCKADE_STEPS_H_
#define STOCKADE_STEPS_H_

#define STOCKADE_STEPS(X)                                                                        \
  X(1, Sync, "sync", "read")                          /* waiting for the parent's id maps */     \
  X(2, Signals, "signals", "sigaction")               /* resetting signal dispositions */        \
  X(3, DeathSignal, "death-signal", "prctl")          /* PR_SET_PDEATHSIG, parent liveness */    \
  X(4, MountPrivate, "mount-private", "mount")        /* the inherited tree made private */      \
  X(5, MountBase, "mount-base", "mount")              /* scratch tmpfs: newroot/, oldroot/ */    \
  X(6, PivotBase, "pivot-base", "pivot_root")         /* first pivot_root, into the scratch */   \
  X(7, MountRoot, "mount-root", "mount")              /* the sandbox's own root tmpfs */         \
  X(8, Mount, "mount", "mount")                       /* one plan.mounts entry (index) */        \
  X(9, DetachOldRoot, "detach-old-root", "umount2")   /* umount2(oldroot) */                     \
  X(10, PivotRoot, "pivot-root", "pivot_root")        /* final pivot_root into newroot */        \
  X(11, RemountRoot, "remount-root", "mount_setattr") /* making / read-only */                   \
  X(12, Chdir, "chdir", "chdir")                      /* chdir(cwd) */                           \
  X(13, Loopback, "loopback", "ioctl")                /* bringing lo up */                       \
  X(14, Route, "route", "rtnetlink")                  /* local 0.0.0.0/0 and ::/0 on lo */       \
  X(15, Listener, "listener", "bind")                 /* one injected listener (index) */        \
  X(16, SendListeners, "send-listeners", "sendmsg")   /* SCM_RIGHTS to the parent */             \
  X(17, Hostname, "hostname", "sethostname")          /* sethostname */                          \
  X(18, Setsid, "session", "setpgid")                 /* TIOCNOTTY, setpgid, sched (child.cc) */ \
  X(19, Rlimit, "rlimit", "prlimit64")                /* one rlimit (index) */                   \
  X(20, BoundingSet, "bounding-set", "prctl")         /* securebits, PR_CAPBSET_DROP */          \
  X(21, Identity, "identity", "setresuid")            /* setgroups/setresgid/setresuid */        \
  X(22, Capabilities, "capabilities", "capset")       /* capset to zero, ambient cleared */      \
  X(23, NoNewPrivs, "no-new-privs", "prctl")          /* PR_SET_NO_NEW_PRIVS */                  \
  X(24, Fds, "fds", "dup3")                           /* arranging stdio, closing the rest */    \
  X(25, Seccomp, "seccomp", "seccomp")                /* installing the filter */                \
  X(26, Exec, "exec", "execve")                       /* execve of payload or stockade-init */   \
  X(27, IdMap, "id-map", "write")                     /* parent: /proc/PID/{uid,gid}_map */      \
  X(28, Clone, "clone", "clone")                      /* parent: clone() */                      \
  X(29, Init, "init", "fork")                         /* stockade-init: fork of the payload */   \
  X(30, IdmapMount, "idmap-mount", "mount_setattr")   /* parent: idmapped rw grant (index) */    \
  X(31, Landlock, "landlock", "landlock_add_rule")    /* ruleset (index: rule) or entering */    \
  X(32, Cgroup, "cgroup", "write")                    /* parent: clone3 into v2, or procs */     \
  X(33, Budget, "kernel-budget", "write")             /* one /proc/sys/user limit (index) */     \
  X(34, FastOpen, "fast-open", "write")               /* net.ipv4.tcp_fastopen=0 (net.cc) */

#endif /* STOCKADE_STEPS_H_ */
