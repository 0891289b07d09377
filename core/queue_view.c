/*
 * queue_view.c - one message's files printed as they are (see
 * queue_view.h). The complaints are Exim 4.96's, on stdout as there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_view.h"
#include "spool_header.h"
#include "spool_list.h"
#include "util.h"

#define QUEUE_VIEW_CHUNK	65536

/* Copies the file at fd from offset to out. Returns 0, or -1 with errno
 * set. */
static int
queue_view_copy(FILE *out, int fd, off_t offset)
{
	char *buf = xmalloc(QUEUE_VIEW_CHUNK);
	ssize_t n;
	int rc = 0;

	if (offset > 0 && lseek(fd, offset, SEEK_SET) < 0)
		rc = -1;
	while (rc == 0 && (n = read(fd, buf, QUEUE_VIEW_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || fwrite(buf, 1, (size_t)n, out) != (size_t)n)
			rc = -1;
	}
	free(buf);
	return rc;
}

/* Opens <id><suffix> from whichever layout has it. */
static int
queue_view_open(const struct config *config, const char *id,
    const char *suffix)
{
	int fd = -1;

	for (int pass = 0; pass < 2 && fd < 0; pass++) {
		bool split = pass == 0 ? config->split_spool_directory :
		    !config->split_spool_directory;
		char *path = split ?
		    xasprintf("%s/input/%c/%s%s", config->spool_directory, id[5],
		    id, suffix) :
		    xasprintf("%s/input/%s%s", config->spool_directory, id, suffix);
		int saved;

		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		saved = errno;
		free(path);
		errno = saved;
		if (fd < 0 && errno != ENOENT)
			break;
	}
	return fd;
}

static int
queue_view_file(FILE *out, const struct config *config, const char *id,
    const char *suffix)
{
	int fd = queue_view_open(config, id, suffix);
	int rc;

	if (fd < 0) {
		fprintf(out, "Failed to open input file for %s%s: %s\n", id,
		    suffix, strerror(errno));
		return 1;
	}
	rc = queue_view_copy(out, fd, 0);
	close(fd);
	return rc < 0 ? 1 : 0;
}

static int
queue_view_log(FILE *out, const struct config *config, const char *id)
{
	char *path = spool_list_msglog_path(config->spool_directory,
	    config->split_spool_directory, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc;

	free(path);
	if (fd < 0) {
		fprintf(out, "Failed to open msglog file for %s: %s\n", id,
		    strerror(errno));
		return 1;
	}
	rc = queue_view_copy(out, fd, 0);
	close(fd);
	return rc < 0 ? 1 : 0;
}

static int
queue_view_message(FILE *out, const struct config *config, const char *id)
{
	struct spool_list_message m;
	int fd, rc;

	fd = queue_view_open(config, id, "-D");
	if (fd < 0) {
		fprintf(out, "Spool data file for %s does not exist\n", id);
		return 1;
	}
	spool_list_read(config->spool_directory, config->split_spool_directory,
	    id, &m);
	if (m.status != SPOOL_LIST_OK) {
		if (m.status == SPOOL_LIST_READ_ERROR)
			fprintf(out, "Spool read error for %s-H: %s\n", id,
			    strerror(m.error_number));
		else
			fprintf(out, "Spool format error for %s-H\n", id);
		spool_list_message_free(&m);
		close(fd);
		return 1;
	}
	for (size_t i = 0; i < m.header.fields_count; i++) {
		const struct spool_header_field *f = &m.header.fields[i];

		if (f->flag != SPOOL_FIELD_DELETED)
			fwrite(f->text, 1, f->len, out);
	}
	fputc('\n', out);
	/* The body follows the "<id>-D" line. */
	rc = queue_view_copy(out, fd, (off_t)strlen(id) + 3);
	close(fd);
	spool_list_message_free(&m);
	return rc < 0 ? 1 : 0;
}

int
queue_view_print(FILE *out, const struct config *config,
    enum options_view view, const char *id)
{
	switch (view) {
	case OPTIONS_VIEW_BODY:
		return queue_view_file(out, config, id, "-D");
	case OPTIONS_VIEW_HEADER:
		return queue_view_file(out, config, id, "-H");
	case OPTIONS_VIEW_LOG:
		return queue_view_log(out, config, id);
	case OPTIONS_VIEW_MESSAGE:
		return queue_view_message(out, config, id);
	}
	return 1;
}
