/* The keeper's spawn of a command (keeper_attempts.py), in one call: a vfork-like clone that
 * shares the keeper's memory (nothing of the keeper is copied) and makes the command's pidfd
 * as it is born; the child is born in the attempt's cgroup (clone3, below) or joins it itself
 * (the keeper never moves), enters its working directory and a session of its own, takes its
 * stdin, stdout and stderr, resets the given signals to their default (and its open files'
 * soft limit to the given one, the keeper's own being raised: keeper_attempts.more_files),
 * unblocks every signal and execs. The GIL is let go for
 * the clone, which returns once the child has exec'd (or failed: then it is reaped here and
 * OSError says why, with the stage: "cgroup", "cwd" or "exec").
 *
 * Optional: setup.py builds it where a C compiler is present; keeper_attempts.py uses
 * os.posix_spawn otherwise. Linux only (clone with CLONE_PIDFD: Linux 5.2).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* Born in its cgroup: clone3 with CLONE_INTO_CGROUP (Linux 5.7) puts the child in the attempt's
 * cgroup as it is made, instead of the child moving itself there (a write to cgroup.procs, which
 * takes the cgroup hierarchy's locks for writing). glibc has no wrapper for a clone3 whose child
 * runs a function on a stack of its own, so here is one, for x86-64 (as glibc's own __clone3):
 * jp_clone3(args, size, fn, arg) returns the child's pid, or -errno; the child calls fn(arg) on
 * args->stack and exits with what it returns. Elsewhere the child joins by cgroup.procs. */
#if defined(__x86_64__)
#define HAVE_CLONE3 1
struct jp_clone_args {
    unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};
long jp_clone3(struct jp_clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(".pushsection .text\n"
        ".globl jp_clone3\n"
        ".hidden jp_clone3\n"
        ".type jp_clone3, @function\n"
        "jp_clone3:\n"
        "    mov %rcx, %r8\n"      /* arg, in a register the syscall keeps */
        "    mov $435, %eax\n"     /* SYS_clone3 */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    ret\n"                /* the parent: pid or -errno */
        "1:  xor %ebp, %ebp\n"    /* the child, on args->stack */
        "    and $-16, %rsp\n"
        "    mov %r8, %rdi\n"
        "    call *%rdx\n"
        "    mov %eax, %edi\n"
        "    mov $60, %eax\n"      /* SYS_exit */
        "    syscall\n"
        "    hlt\n"
        ".size jp_clone3, .-jp_clone3\n"
        ".popsection\n");
/* 0 until clone3 was refused as unknown or its cgroup flag as invalid: the kernel lacks them. */
static int clone3_missing;
#endif

#define STACK_SIZE (64 * 1024)
#define MAX_RESET 64

struct child_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;         /* NULL: the keeper's */
    int cgroup_procs;        /* -1: none */
    int stdio[3];
    int reset[MAX_RESET];    /* signals set to SIG_DFL */
    int nreset;
    volatile int err;        /* written by the child on failure (shared memory) */
    volatile int stage;      /* 1 cgroup, 2 cwd, 3 exec */
    volatile int ran;        /* the child ran (1 as it starts): 0 if it was killed as it was born */
    long long nofile;        /* the soft RLIMIT_NOFILE the command gets; -1: the keeper's */
};

static int child_main(void *arg) {
    struct child_args *a = (struct child_args *)arg;
    struct sigaction dfl;
    sigset_t none;
    int fd;

    a->ran = 1;
    if (a->cgroup_procs >= 0 && write(a->cgroup_procs, "0", 1) != 1) {
        a->stage = 1;
        goto fail;
    }
    if (a->cwd != NULL && chdir(a->cwd) != 0) {
        a->stage = 2;
        goto fail;
    }
    a->stage = 3;
    if (setsid() < 0)
        goto fail;
    for (fd = 0; fd < 3; fd++) {
        if (a->stdio[fd] == fd) {  /* dup2 to itself keeps CLOEXEC: clear it */
            int flags = fcntl(fd, F_GETFD);
            if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
                goto fail;
        } else if (dup2(a->stdio[fd], fd) < 0) {
            goto fail;
        }
    }
    if (a->nofile >= 0) {  /* (lowering a soft limit cannot fail) */
        struct rlimit files;
        if (getrlimit(RLIMIT_NOFILE, &files) == 0 && (rlim_t)a->nofile < files.rlim_cur) {
            files.rlim_cur = (rlim_t)a->nofile;
            setrlimit(RLIMIT_NOFILE, &files);
        }
    }
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (fd = 0; fd < a->nreset; fd++)
        sigaction(a->reset[fd], &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(a->path, a->argv, a->envp);
fail:
    a->err = errno ? errno : EINVAL;
    _exit(127);
}

/* A NULL-terminated array of the char* inside a list of bytes (borrowed: valid while the list
 * lives); NULL with an exception set on a bad item. */
static char **bytes_array(PyObject *list, const char *what) {
    Py_ssize_t n, i;
    char **out;
    if (!PyList_Check(list)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of bytes", what);
        return NULL;
    }
    n = PyList_GET_SIZE(list);
    out = PyMem_Malloc((n + 1) * sizeof(char *));
    if (out == NULL)
        return (char **)PyErr_NoMemory();
    for (i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(item)) {
            PyMem_Free(out);
            PyErr_Format(PyExc_TypeError, "%s must be a list of bytes", what);
            return NULL;
        }
        out[i] = PyBytes_AS_STRING(item);
        if ((Py_ssize_t)strlen(out[i]) != PyBytes_GET_SIZE(item)) {
            PyMem_Free(out);
            PyErr_Format(PyExc_ValueError, "embedded null byte in %s", what);
            return NULL;
        }
    }
    out[n] = NULL;
    return out;
}

static const char *const STAGES[] = {"exec", "cgroup", "cwd", "exec"};

/* Raise OSError(err) with a `stage` attribute: what the child was doing when it failed. */
static PyObject *failed(int err, const char *stage) {
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", err, strerror(err));
    if (exc == NULL)
        return NULL;
    PyObject *name = PyUnicode_FromString(stage);
    if (name == NULL || PyObject_SetAttrString(exc, "stage", name) < 0) {
        Py_XDECREF(name);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(name);
    PyErr_SetObject(PyExc_OSError, exc);
    Py_DECREF(exc);
    return NULL;
}

/* Wait for a child that will not exec (it failed, or was killed as it was born) and close its
 * pidfd. */
static void reap(pid_t pid, int *pidfd) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (*pidfd >= 0)
        close(*pidfd);
    *pidfd = -1;
}

/* The clone: into `cgroup_dir` (an open cgroup directory) by clone3 where it can be, else with
 * the child joining by its cgroup.procs (a->cgroup_procs). Every signal is blocked by then. */
static int clone_child(struct child_args *a, char *stack, int cgroup_dir, int *pidfd) {
#ifdef HAVE_CLONE3
    if (cgroup_dir >= 0 && !clone3_missing) {
        struct jp_clone_args ca;
        int procs = a->cgroup_procs;
        long pid;
        memset(&ca, 0, sizeof(ca));
        ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP;
        ca.pidfd = (unsigned long long)(uintptr_t)pidfd;
        ca.exit_signal = SIGCHLD;
        ca.stack = (unsigned long long)(uintptr_t)stack;
        ca.stack_size = STACK_SIZE - 64;
        ca.cgroup = (unsigned long long)cgroup_dir;
        a->cgroup_procs = -1;
        pid = jp_clone3(&ca, sizeof(ca), child_main, a);
        if (pid > 0 && a->ran)
            return (int)pid;
        if (pid > 0) {
            /* Killed as it was born, before it ran: since "cgroup: fix race between fork and
             * cgroup.kill" (Linux 6.14, and stable kernels before), clone3 compares the target
             * cgroup's count of cgroup.kill writes with the one of the caller's cgroup, so a
             * cgroup killed once (a spare whose attempt was killed) kills all it is given
             * this way; a move by cgroup.procs is spared. Reaped, and made again below. */
            reap((pid_t)pid, pidfd);
        }
        a->cgroup_procs = procs;  /* refused: the clone below says why, with its stage */
        if (pid == -ENOSYS || pid == -E2BIG || pid == -EINVAL)
            clone3_missing = 1;
    }
#else
    (void)cgroup_dir;
#endif
    return clone(child_main, stack + STACK_SIZE - 64, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, a,
                 pidfd);
}

/* spawn(path, argv, envp, cwd, cgroup_procs, stdin, stdout, stderr, reset[, cgroup_dir[, nofile]])
 *   -> (pid, pidfd) */
static PyObject *spawn(PyObject *self, PyObject *args) {
    const char *path, *cwd = NULL;
    PyObject *argv_list, *env_list, *reset, *cwd_obj;
    struct child_args a;
    char **argv = NULL, **envp = NULL, *stack;
    sigset_t all, old;
    int pidfd = -1, pid, saved, cgroup_dir = -1;
    Py_ssize_t i;

    (void)self;
    memset(&a, 0, sizeof(a));
    a.nofile = -1;
    if (!PyArg_ParseTuple(args, "yO!O!OiiiiO!|iL", &path, &PyList_Type, &argv_list, &PyList_Type,
                          &env_list, &cwd_obj, &a.cgroup_procs, &a.stdio[0], &a.stdio[1],
                          &a.stdio[2], &PyTuple_Type, &reset, &cgroup_dir, &a.nofile))
        return NULL;
    if (cwd_obj != Py_None) {
        if (!PyBytes_Check(cwd_obj))
            return PyErr_Format(PyExc_TypeError, "cwd must be bytes or None");
        cwd = PyBytes_AS_STRING(cwd_obj);
        if ((Py_ssize_t)strlen(cwd) != PyBytes_GET_SIZE(cwd_obj))  /* as os.chdir: not cut short */
            return PyErr_Format(PyExc_ValueError, "embedded null byte in cwd");
    }
    if (PyTuple_GET_SIZE(reset) > MAX_RESET)
        return PyErr_Format(PyExc_ValueError, "at most %d signals to reset", MAX_RESET);
    for (i = 0; i < PyTuple_GET_SIZE(reset); i++) {
        a.reset[i] = (int)PyLong_AsLong(PyTuple_GET_ITEM(reset, i));
        if (a.reset[i] == -1 && PyErr_Occurred())
            return NULL;
    }
    a.nreset = (int)PyTuple_GET_SIZE(reset);
    if ((argv = bytes_array(argv_list, "argv")) == NULL)
        return NULL;
    if ((envp = bytes_array(env_list, "envp")) == NULL) {
        PyMem_Free(argv);
        return NULL;
    }
    /* The child's stack while it runs to its exec (the keeper's thread waits meanwhile). */
    if ((stack = PyMem_RawMalloc(STACK_SIZE)) == NULL) {
        PyMem_Free(argv);
        PyMem_Free(envp);
        return PyErr_NoMemory();
    }
    a.path = path;
    a.argv = argv;
    a.envp = envp;
    a.cwd = cwd;

    Py_BEGIN_ALLOW_THREADS
    /* No handler of the keeper's may run in the child, which shares its memory: every signal
     * is blocked across the clone; the child unblocks them once reset, just before its exec. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone_child(&a, stack, cgroup_dir, &pidfd);
    saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && a.err != 0)
        reap(pid, &pidfd);
    Py_END_ALLOW_THREADS

    PyMem_RawFree(stack);
    PyMem_Free(argv);
    PyMem_Free(envp);
    if (pid < 0)
        return failed(saved, "exec");
    if (a.err != 0)
        return failed(a.err, STAGES[a.stage & 3]);
    return Py_BuildValue("ii", pid, pidfd);
}

static PyMethodDef methods[] = {
    {"spawn", spawn, METH_VARARGS,
     "spawn(path, argv, envp, cwd, cgroup_procs, stdin, stdout, stderr, reset[, cgroup_dir[, nofile]]) -> (pid, pidfd)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spawn", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spawn(void) { return PyModule_Create(&module); }
