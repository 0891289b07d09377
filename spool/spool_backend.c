/*
 * spool_backend.c - the POSIX spool backend (see spool_backend.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spool_backend.h"

static int
posix_open(void *ctx, const char *path, int flags, mode_t mode)
{
	int fd;

	do
		fd = open(path, flags, mode);
	while (fd == -1 && errno == EINTR);
	return fd;
}

static ssize_t
posix_read(void *ctx, int fd, void *buf, size_t len)
{
	return read(fd, buf, len);
}

static ssize_t
posix_write(void *ctx, int fd, const void *buf, size_t len)
{
	return write(fd, buf, len);
}

static int
posix_fstat(void *ctx, int fd, struct stat *st)
{
	return fstat(fd, st);
}

static int
posix_stat(void *ctx, const char *path, struct stat *st)
{
	return stat(path, st);
}

static int
posix_fchmod(void *ctx, int fd, mode_t mode)
{
	return fchmod(fd, mode);
}

static int
posix_lock(void *ctx, int fd, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = len;
	fl.l_pid = 0;		/* required to be 0 for open file description locks */
	return fcntl(fd, F_OFD_SETLK, &fl);
}

static int
posix_fdatasync(void *ctx, int fd)
{
	return fdatasync(fd);
}

static int
posix_syncfs(void *ctx, int fd)
{
	return syncfs(fd);
}

static int
posix_close(void *ctx, int fd)
{
	return close(fd);
}

static int
posix_rename(void *ctx, const char *from, const char *to)
{
	return rename(from, to);
}

static int
posix_unlink(void *ctx, const char *path)
{
	return unlink(path);
}

static int
posix_mkdir(void *ctx, const char *path, mode_t mode)
{
	return mkdir(path, mode);
}

static int
posix_fsync_dir(void *ctx, const char *path)
{
	int fd, rc, saved_errno;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	rc = fsync(fd);
	saved_errno = errno;
	close(fd);
	errno = saved_errno;
	return rc;
}

static int
posix_list_dir(void *ctx, const char *path, spool_list_fn fn, void *arg)
{
	DIR *dir;
	struct dirent *entry;
	int rc = 0, saved_errno;

	dir = opendir(path);
	if (dir == NULL)
		return -1;
	for (;;) {
		errno = 0;
		entry = readdir(dir);
		if (entry == NULL) {
			if (errno != 0)
				rc = -1;
			break;
		}
		if (strcmp(entry->d_name, ".") == 0 ||
		    strcmp(entry->d_name, "..") == 0)
			continue;
		rc = fn(arg, entry->d_name);
		if (rc != 0)
			break;
	}
	saved_errno = errno;
	closedir(dir);
	errno = saved_errno;
	return rc;
}

static const struct spool_backend posix_backend = {
	.ctx = NULL,
	.open = posix_open,
	.read = posix_read,
	.write = posix_write,
	.fstat = posix_fstat,
	.stat = posix_stat,
	.fchmod = posix_fchmod,
	.lock = posix_lock,
	.fdatasync = posix_fdatasync,
	.syncfs = posix_syncfs,
	.close = posix_close,
	.rename = posix_rename,
	.unlink = posix_unlink,
	.mkdir = posix_mkdir,
	.fsync_dir = posix_fsync_dir,
	.list_dir = posix_list_dir,
};

const struct spool_backend *
spool_backend_posix(void)
{
	return &posix_backend;
}

int
spool_backend_write_all(const struct spool_backend *backend, int fd,
    const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = backend->write(backend->ctx, fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* a regular file never accepts 0 bytes */
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
