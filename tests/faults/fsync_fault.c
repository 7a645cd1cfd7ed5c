/* An fsync that fails: LD_PRELOADed into a process under test (tests/faults/test_fsync_error.py).
 *
 * fsync(2) and fdatasync(2) return -1 with errno EIO, without syncing, for every descriptor
 * whose file lies in the directory named by TL_FSYNC_FAULT_DIR, while the file named by
 * TL_FSYNC_FAULT_TRIGGER exists. The data already written stays in the page cache, as it
 * does after a real write-back error: a later reader (a reopen of the database) sees it.
 * Every other descriptor, and every call while the trigger is absent, goes to the C
 * library's own function. Each injected failure is counted in TL_FSYNC_FAULT_TRIGGER
 * (one byte appended), so the test can tell that the fault was reached.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*sync_fn)(int);

static int in_fault_dir(int fd) {
    const char *dir = getenv("TL_FSYNC_FAULT_DIR");
    const char *trigger = getenv("TL_FSYNC_FAULT_TRIGGER");
    if (dir == NULL || trigger == NULL || access(trigger, F_OK) != 0) {
        return 0;
    }
    char link[64];
    char target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) {
        return 0;
    }
    target[n] = '\0';
    size_t len = strlen(dir);
    if (strncmp(target, dir, len) != 0 || (target[len] != '/' && target[len] != '\0')) {
        return 0;
    }
    int counter = open(trigger, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (counter >= 0) {
        (void)!write(counter, "x", 1);
        close(counter);
    }
    return 1;
}

static int call_real(const char *name, int fd) {
    sync_fn real = (sync_fn)dlsym(RTLD_NEXT, name);
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fsync(int fd) {
    if (in_fault_dir(fd)) {
        errno = EIO;
        return -1;
    }
    return call_real("fsync", fd);
}

int fdatasync(int fd) {
    if (in_fault_dir(fd)) {
        errno = EIO;
        return -1;
    }
    return call_real("fdatasync", fd);
}
