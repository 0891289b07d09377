/*
 * spool_backend.h - the file operations of the spool store, as a struct
 * of function pointers.
 *
 * The spool store calls no file system function directly: every open,
 * write, sync, rename and unlink goes through a backend, so that unit
 * tests can record each call in order and make any single call fail.
 * spool_backend_posix() returns the real one.
 *
 * Each operation behaves like the system call of the same name: it
 * returns -1 with errno set on failure. Operations are called from the
 * event loop thread and from the commit worker thread at the same time,
 * so a backend must be thread-safe.
 */
#ifndef SLUICE_SPOOL_BACKEND_H
#define SLUICE_SPOOL_BACKEND_H

#include <sys/stat.h>
#include <sys/types.h>

/* Mode of every spool file and directory the store creates (Exim's
 * SPOOL_MODE for files): the owner writes, the group reads. */
#define SPOOL_FILE_MODE		0640
#define SPOOL_DIR_MODE		0750

/* Called once per directory entry other than "." and ".."; a non-zero
 * return stops the listing and becomes list_dir's return value. */
typedef int (*spool_list_fn)(void *arg, const char *name);

struct spool_backend {
	void *ctx;		/* passed to every operation */

	int (*open)(void *ctx, const char *path, int flags, mode_t mode);
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
	ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
	int (*fstat)(void *ctx, int fd, struct stat *st);
	int (*stat)(void *ctx, const char *path, struct stat *st);
	int (*fchmod)(void *ctx, int fd, mode_t mode);
	/* Takes a non-blocking write lock on bytes 0..len-1 of fd. It is an
	 * open file description lock (F_OFD_SETLK), which conflicts with the
	 * F_SETLK locks of Exim and its tools, and which closing another
	 * descriptor of the same file does not release. A lock held
	 * elsewhere fails with EAGAIN or EACCES. */
	int (*lock)(void *ctx, int fd, off_t len);
	int (*fdatasync)(void *ctx, int fd);
	/* Flushes every file on the file system of fd's file (syncfs(2)).
	 * NULL makes the store sync each file on its own. */
	int (*syncfs)(void *ctx, int fd);
	int (*close)(void *ctx, int fd);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*unlink)(void *ctx, const char *path);
	int (*mkdir)(void *ctx, const char *path, mode_t mode);
	/* Opens the directory, fsyncs it and closes it, so that the entries
	 * created or renamed in it survive a crash. */
	int (*fsync_dir)(void *ctx, const char *path);
	/* Calls fn for each entry of the directory, in directory order. */
	int (*list_dir)(void *ctx, const char *path, spool_list_fn fn,
	    void *arg);
};

/* The backend that calls the operating system; ctx is unused. */
const struct spool_backend *spool_backend_posix(void);

/* Writes all len bytes, retrying short writes and EINTR. Returns 0, or
 * -1 with errno set. */
int spool_backend_write_all(const struct spool_backend *backend, int fd,
    const void *buf, size_t len);

#endif
