/*
 * spool_list.c - reading the queue straight from the spool (see
 * spool_list.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_list.h"
#include "spool_store.h"
#include "util.h"

/* Adds the <id>-H names of one directory to the list. */
static int
spool_list_dir(const char *path, char subdir, struct spool_list_entry **entries,
    size_t *count, size_t *alloc, char *subdirs, size_t *subdir_count,
    char **error)
{
	DIR *dir = opendir(path);
	struct dirent *de;

	if (dir == NULL) {
		/* No input/ yet: nothing was ever queued. A sub-directory
		 * may vanish between the listings. */
		if (errno == ENOENT)
			return 0;
		*error = xasprintf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name);
		size_t id_len = msgid_prefix_len(de->d_name);

		/* One-character names are the sub-directories of a split
		 * spool; they are listed after input/ itself. */
		if (subdir == '\0' && len == 1 && de->d_name[0] != '.' &&
		    strchr(subdirs, de->d_name[0]) == NULL) {
			subdirs[(*subdir_count)++] = de->d_name[0];
			subdirs[*subdir_count] = '\0';
			continue;
		}
		if (id_len == 0 || len != id_len + 2 ||
		    strcmp(de->d_name + id_len, "-H") != 0)
			continue;
		if (*count == *alloc) {
			*alloc = *alloc == 0 ? 64 : *alloc * 2;
			*entries = xreallocarray(*entries, *alloc,
			    sizeof(**entries));
		}
		memcpy((*entries)[*count].id, de->d_name, id_len);
		(*entries)[*count].id[id_len] = '\0';
		(*entries)[*count].subdir = subdir;
		(*count)++;
	}
	closedir(dir);
	return 0;
}

int
spool_list_messages(const char *spool_directory,
    struct spool_list_entry **entries, size_t *count, char **error)
{
	/* 62 base-62 letters at most, plus room for anything else. */
	char subdirs[257] = "";
	size_t subdir_count = 0, alloc = 0;
	char *path = xasprintf("%s/input", spool_directory);
	int rc;

	*entries = NULL;
	*count = 0;
	rc = spool_list_dir(path, '\0', entries, count, &alloc, subdirs,
	    &subdir_count, error);
	for (size_t i = 0; rc == 0 && i < subdir_count; i++) {
		char *sub = xasprintf("%s/%c", path, subdirs[i]);

		rc = spool_list_dir(sub, subdirs[i], entries, count, &alloc, NULL,
		    NULL, error);
		free(sub);
	}
	free(path);
	if (rc < 0) {
		free(*entries);
		*entries = NULL;
		*count = 0;
	}
	return rc;
}

static int
spool_list_compare(const void *a, const void *b)
{
	const struct spool_list_entry *x = a, *y = b;

	return msgid_compare(x->id, y->id);
}

void
spool_list_sort(struct spool_list_entry *entries, size_t count)
{
	if (count > 1)
		qsort(entries, count, sizeof(*entries), spool_list_compare);
}

int
spool_list_read_file(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	int fd, saved_errno;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) != 0)
		goto fail;
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	data = xmalloc((size_t)st.st_size + 1);
	/* Stop at the size fstat gave, so a file that grows is still
	 * bounded. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	data[got] = '\0';
	*out = data;
	*len = got;
	return 0;

fail:
	saved_errno = errno;
	free(data);
	close(fd);
	errno = saved_errno;
	return -1;
}

static char *
spool_list_input_dir(const char *spool_directory, const char *id, bool split)
{
	if (split)
		return xasprintf("%s/input/%c", spool_directory, id[5]);
	return xasprintf("%s/input", spool_directory);
}

static void
spool_list_fail(struct spool_list_message *m, enum spool_list_status status,
    int error_number, char *error)
{
	m->status = status;
	m->error_number = error_number;
	m->error = error;
}

/* Applies <id>-J beside -H, if there is one. */
static void
spool_list_apply_journal(struct spool_list_message *m)
{
	char *path = spool_list_path(m, "-J");
	char *data = NULL, *error = NULL;
	size_t len;

	if (spool_list_read_file(path, SPOOL_JOURNAL_FILE_MAX, &data,
	    &len) < 0) {
		if (errno != ENOENT)
			spool_list_fail(m, SPOOL_LIST_READ_ERROR, errno,
			    xasprintf("cannot read %s: %s", path, strerror(errno)));
		free(path);
		return;
	}
	if (spool_journal_apply(&m->header, data, len, &error) < 0) {
		spool_list_fail(m, SPOOL_LIST_FORMAT_ERROR, 0,
		    xasprintf("%s: %s", path, error));
		free(error);
	}
	free(data);
	free(path);
}

void
spool_list_read(const char *spool_directory, bool split, const char *id,
    struct spool_list_message *out)
{
	char *data = NULL, *path = NULL, *error = NULL;
	size_t len = 0;
	int saved_errno = ENOENT;
	struct stat st;

	memset(out, 0, sizeof(*out));
	out->header_file_size = -1;
	out->data_file_size = -1;
	strlcpy_s(out->id, id, sizeof(out->id));
	if (!msgid_valid(id, strlen(id))) {
		out->input_dir = spool_list_input_dir(spool_directory, "", false);
		spool_list_fail(out, SPOOL_LIST_READ_ERROR, EINVAL,
		    xasprintf("invalid message id \"%.64s\"", id));
		return;
	}

	for (int pass = 0; pass < 2; pass++) {
		bool layout = pass == 0 ? split : !split;

		free(out->input_dir);
		out->input_dir = spool_list_input_dir(spool_directory, id, layout);
		free(path);
		path = xasprintf("%s/%s-H", out->input_dir, id);
		if (spool_list_read_file(path, SPOOL_HEADER_FILE_MAX, &data,
		    &len) == 0)
			break;
		saved_errno = errno;
		if (saved_errno != ENOENT)
			break;
	}
	if (data == NULL) {
		/* Name the expected place when the file is in neither. */
		if (saved_errno == ENOENT) {
			free(out->input_dir);
			out->input_dir = spool_list_input_dir(spool_directory, id,
			    split);
		}
		spool_list_fail(out, SPOOL_LIST_READ_ERROR, saved_errno,
		    xasprintf("cannot read %s: %s", path, strerror(saved_errno)));
		free(path);
		return;
	}
	out->header_file_size = (off_t)len;

	if (spool_header_parse(data, len, path, &out->header, &error) < 0) {
		spool_list_fail(out, SPOOL_LIST_FORMAT_ERROR, 0, error);
	} else {
		spool_list_apply_journal(out);
	}
	free(data);
	free(path);

	path = spool_list_path(out, "-D");
	if (stat(path, &st) == 0)
		out->data_file_size = st.st_size;
	free(path);
}

void
spool_list_message_free(struct spool_list_message *m)
{
	free(m->error);
	free(m->input_dir);
	spool_header_free(&m->header);
	memset(m, 0, sizeof(*m));
}

char *
spool_list_path(const struct spool_list_message *m, const char *suffix)
{
	return xasprintf("%s/%s%s", m->input_dir, m->id, suffix);
}

char *
spool_list_msglog_path(const char *spool_directory, bool split,
    const char *id)
{
	char *paths[2];
	struct stat st;

	for (int pass = 0; pass < 2; pass++) {
		bool layout = pass == 0 ? split : !split;

		paths[pass] = layout ?
		    xasprintf("%s/msglog/%c/%s", spool_directory, id[5], id) :
		    xasprintf("%s/msglog/%s", spool_directory, id);
	}
	if (stat(paths[0], &st) != 0 && stat(paths[1], &st) == 0) {
		free(paths[0]);
		return paths[1];
	}
	free(paths[1]);
	return paths[0];
}
