/*
 * config_reader.c - the preprocessor of sluice.conf (see config_reader.h).
 *
 * Lines are read with getc() into fixed buffers of CONFIG_LINE_MAX, so a
 * file without newlines costs no more memory than a short one. The open
 * files form a stack, with the main file at the bottom and one entry per
 * nested .include. The .ifdef blocks form a second stack. Each file
 * records the depth of that stack when it was opened, so a file can
 * close only the blocks it opened itself.
 *
 * Continuation follows Exim: trailing white space is dropped first, so
 * "a \  " still continues; the leading white space of the next line is
 * dropped; comment lines inside a continued line are skipped, and a blank
 * line ends it. A comment line never continues.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "config_reader.h"
#include "util.h"

struct reader_file {
	FILE *fp;
	const char *path;	/* borrowed from reader->paths */
	dev_t dev;
	ino_t ino;
	int line;		/* physical lines read so far */
	size_t cond_base;	/* cond_depth when this file was opened */
};

struct reader_macro {
	char *name;
	size_t name_len;
	char *value;
	size_t value_len;
	bool from_define;	/* -D on the command line: the files cannot change it */
};

/* One open .ifdef/.ifndef block. */
struct reader_cond {
	bool parent_active;	/* lines around the block are being read */
	bool active;		/* lines of the current branch are being read */
	bool taken;		/* some branch of the block was already chosen */
	bool else_seen;
	const char *directive;	/* "ifdef" or "ifndef", for messages */
	int line;
};

enum reader_state {
	READER_RUNNING,
	READER_DONE,
	READER_FAILED,
};

struct config_reader {
	struct reader_file files[CONFIG_INCLUDE_DEPTH_MAX + 1];
	size_t file_count;

	/* Every path ever opened, so that positions handed out stay valid. */
	char **paths;
	size_t path_count;

	struct reader_macro *macros;	/* in definition order */
	size_t macro_count;

	struct reader_cond conds[CONFIG_IFDEF_DEPTH_MAX];
	size_t cond_depth;

	/* Position of the logical line being handled. */
	const char *where_file;
	int where_line;

	enum reader_state state;
	char *error;

	char physical[CONFIG_LINE_MAX + 1];
	char logical[CONFIG_LINE_MAX + 1];
	char expanded[CONFIG_LINE_MAX + 1];
	char scratch[CONFIG_LINE_MAX + 1];
};

static int reader_fail(struct config_reader *reader, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);
static int reader_open_file(struct config_reader *reader, const char *path,
    bool if_exists);
static int reader_define(struct config_reader *reader, const char *name,
    size_t name_len, const char *value, bool redefine, bool from_define);
static int reader_expand(struct config_reader *reader, const char *in,
    char *out);

/* Records "FILE:LINE: message" for the current line and returns -1. */
static int
reader_fail(struct config_reader *reader, const char *fmt, ...)
{
	va_list ap;
	char *message;

	va_start(ap, fmt);
	message = xvasprintf(fmt, ap);
	va_end(ap);

	free(reader->error);
	if (reader->where_file != NULL)
		reader->error = xasprintf("%s:%d: %s", reader->where_file,
		    reader->where_line, message);
	else
		reader->error = xstrdup(message);
	free(message);
	reader->state = READER_FAILED;
	return -1;
}

static bool
reader_is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* A macro name: an upper-case letter, then letters, digits and '_'. */
static size_t
reader_macro_name_len(const char *s)
{
	size_t n = 0;

	if (!isupper((unsigned char)s[0]))
		return 0;
	while (reader_is_name_char(s[n]))
		n++;
	return n;
}

static struct reader_macro *
reader_find_macro(struct config_reader *reader, const char *name,
    size_t name_len)
{
	for (size_t i = 0; i < reader->macro_count; i++) {
		struct reader_macro *m = &reader->macros[i];

		if (m->name_len == name_len &&
		    memcmp(m->name, name, name_len) == 0)
			return m;
	}
	return NULL;
}

static bool
reader_active(const struct config_reader *reader)
{
	return reader->cond_depth == 0 ||
	    reader->conds[reader->cond_depth - 1].active;
}

/*
 * Defines or redefines a macro. value is copied after the earlier macros
 * are replaced in it.
 */
static int
reader_define(struct config_reader *reader, const char *name,
    size_t name_len, const char *value, bool redefine, bool from_define)
{
	struct reader_macro *m;

	m = reader_find_macro(reader, name, name_len);
	if (m != NULL && m->from_define && !from_define)
		return 0;	/* -D wins over the files, as in Exim */
	if (m == NULL && redefine)
		return reader_fail(reader,
		    "cannot redefine macro \"%.*s\": it is not defined yet "
		    "(use \"=\" to define it)", (int)name_len, name);
	if (m != NULL && !redefine && !from_define)
		return reader_fail(reader,
		    "macro \"%.*s\" is already defined (use \"==\" to "
		    "redefine it)", (int)name_len, name);

	if (reader_expand(reader, value, reader->scratch) < 0)
		return -1;

	if (m != NULL) {
		free(m->value);
		m->value = xstrdup(reader->scratch);
		m->value_len = strlen(m->value);
		return 0;
	}

	/* An earlier, shorter name inside this one would be replaced
	 * first and break every use of this one. */
	for (size_t i = 0; i < reader->macro_count; i++) {
		const struct reader_macro *old = &reader->macros[i];

		if (old->name_len <= name_len &&
		    memmem(name, name_len, old->name, old->name_len) != NULL)
			return reader_fail(reader,
			    "macro name \"%.*s\" contains the name of the "
			    "earlier macro \"%s\": define the longer name first",
			    (int)name_len, name, old->name);
	}
	if (reader->macro_count >= CONFIG_MACROS_MAX)
		return reader_fail(reader, "too many macros (max %d)",
		    CONFIG_MACROS_MAX);

	reader->macros = xreallocarray(reader->macros, reader->macro_count + 1,
	    sizeof(*reader->macros));
	m = &reader->macros[reader->macro_count++];
	m->name = xstrndup(name, name_len);
	m->name_len = name_len;
	m->value = xstrdup(reader->scratch);
	m->value_len = strlen(m->value);
	m->from_define = from_define;
	return 0;
}

/*
 * Replaces every macro in in, writing the result to out (CONFIG_LINE_MAX
 * + 1 bytes, and not reader->expanded unless in is elsewhere). Returns 0,
 * or -1 when the result is longer than CONFIG_LINE_MAX.
 */
static int
reader_expand(struct config_reader *reader, const char *in, char *out)
{
	char *work = reader->expanded;
	char buffer[CONFIG_LINE_MAX + 1];
	size_t len = strlen(in);

	if (out == reader->expanded)
		work = reader->scratch;
	SLUICE_ASSERT(len <= CONFIG_LINE_MAX);
	memmove(work, in, len + 1);

	for (size_t i = 0; i < reader->macro_count; i++) {
		const struct reader_macro *m = &reader->macros[i];
		const char *pos = work;
		const char *hit;
		size_t n = 0;

		if (strstr(work, m->name) == NULL)
			continue;

		/* The replacement is not scanned again for this macro. */
		while ((hit = strstr(pos, m->name)) != NULL) {
			size_t before = (size_t)(hit - pos);

			if (n + before + m->value_len > CONFIG_LINE_MAX)
				goto too_long;
			memcpy(buffer + n, pos, before);
			n += before;
			memcpy(buffer + n, m->value, m->value_len);
			n += m->value_len;
			pos = hit + m->name_len;
		}
		if (n + strlen(pos) > CONFIG_LINE_MAX)
			goto too_long;
		memcpy(buffer + n, pos, strlen(pos) + 1);
		memcpy(work, buffer, strlen(buffer) + 1);
	}

	memmove(out, work, strlen(work) + 1);
	return 0;

too_long:
	return reader_fail(reader,
	    "line longer than %d characters after macro replacement",
	    CONFIG_LINE_MAX);
}

/* Parses one -D argument: "NAME" or "NAME=value". */
static int
reader_add_define(struct config_reader *reader, const char *define)
{
	size_t name_len = reader_macro_name_len(define);
	const char *value = "";

	if (name_len == 0 || (define[name_len] != '\0' &&
	    define[name_len] != '='))
		return reader_fail(reader,
		    "invalid -D definition \"%s\": a macro name starts with an "
		    "upper-case letter and contains only letters, digits and "
		    "'_'", define);
	if (define[name_len] == '=')
		value = define + name_len + 1;
	if (strlen(value) > CONFIG_LINE_MAX)
		return reader_fail(reader,
		    "-D definition of %.*s longer than %d characters",
		    (int)name_len, define, CONFIG_LINE_MAX);
	return reader_define(reader, define, name_len, value, false, true);
}

/*
 * Opens path and pushes it on the file stack. With if_exists, a file that
 * does not exist is skipped and 1 is returned.
 */
static int
reader_open_file(struct config_reader *reader, const char *path,
    bool if_exists)
{
	struct reader_file *file;
	struct stat st;
	FILE *fp;

	fp = fopen(path, "r");
	if (fp == NULL) {
		int saved_errno = errno;

		if (if_exists && saved_errno == ENOENT)
			return 1;
		if (reader->file_count == 0)
			return reader_fail(reader,
			    "cannot open configuration file \"%s\": %s", path,
			    strerror(saved_errno));
		return reader_fail(reader, "cannot open included file \"%s\": %s",
		    path, strerror(saved_errno));
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		return reader_fail(reader,
		    "configuration file \"%s\" is not a regular file", path);
	}

	for (size_t i = 0; i < reader->file_count; i++) {
		if (reader->files[i].dev == st.st_dev &&
		    reader->files[i].ino == st.st_ino) {
			fclose(fp);
			return reader_fail(reader,
			    "include loop: \"%s\" is already being read", path);
		}
	}
	if (reader->file_count > CONFIG_INCLUDE_DEPTH_MAX) {
		fclose(fp);
		return reader_fail(reader,
		    ".include nested more than %d levels deep at \"%s\"",
		    CONFIG_INCLUDE_DEPTH_MAX, path);
	}

	reader->paths = xreallocarray(reader->paths, reader->path_count + 1,
	    sizeof(*reader->paths));
	reader->paths[reader->path_count] = xstrdup(path);

	file = &reader->files[reader->file_count++];
	file->fp = fp;
	file->path = reader->paths[reader->path_count++];
	file->dev = st.st_dev;
	file->ino = st.st_ino;
	file->line = 0;
	file->cond_base = reader->cond_depth;
	return 0;
}

/*
 * Reads one physical line of file into reader->physical, without its
 * newline. Returns 1, 0 at the end of the file, or -1.
 */
static int
reader_read_physical(struct config_reader *reader, struct reader_file *file)
{
	size_t n = 0;
	int c;

	while ((c = getc(file->fp)) != EOF && c != '\n') {
		if (n == 0) {
			file->line++;
			reader->where_file = file->path;
			reader->where_line = file->line;
		}
		if (c == '\0')
			return reader_fail(reader, "NUL character in line");
		if (n >= CONFIG_LINE_MAX)
			return reader_fail(reader,
			    "line longer than %d characters", CONFIG_LINE_MAX);
		reader->physical[n++] = (char)c;
	}
	if (c == EOF) {
		if (ferror(file->fp))
			return reader_fail(reader, "read error: %s",
			    strerror(errno));
		if (n == 0)
			return 0;
	} else if (n == 0) {
		file->line++;	/* an empty line */
		reader->where_file = file->path;
		reader->where_line = file->line;
	}

	while (n > 0 && isspace((unsigned char)reader->physical[n - 1]))
		n--;
	reader->physical[n] = '\0';
	return 1;
}

/*
 * Reads the next logical line of the top file into reader->logical, with
 * continuations joined and leading and trailing white space removed.
 * Blank and comment lines are skipped. Returns 1, 0 at the end of the
 * file, or -1.
 */
static int
reader_read_logical(struct config_reader *reader)
{
	struct reader_file *file = &reader->files[reader->file_count - 1];
	bool continued = false;
	const char *start_file = NULL;
	int start_line = 0;
	size_t len = 0;

	for (;;) {
		const char *p;
		size_t n;
		int rc;

		rc = reader_read_physical(reader, file);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			if (!continued)
				return 0;
			break;	/* a continuation at the end of the file */
		}

		p = reader->physical;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' && continued)
			break;	/* a blank line ends the continuation */
		if (*p == '\0' || *p == '#')
			continue;

		if (!continued) {
			start_file = reader->where_file;
			start_line = reader->where_line;
		}
		n = strlen(p);
		continued = n > 0 && p[n - 1] == '\\';
		if (continued)
			n--;
		if (len + n > CONFIG_LINE_MAX) {
			reader->where_file = start_file;
			reader->where_line = start_line;
			return reader_fail(reader,
			    "line longer than %d characters after joining "
			    "continuation lines", CONFIG_LINE_MAX);
		}
		memcpy(reader->logical + len, p, n);
		len += n;
		if (!continued)
			break;
	}

	while (len > 0 && isspace((unsigned char)reader->logical[len - 1]))
		len--;
	reader->logical[len] = '\0';
	reader->where_file = start_file;
	reader->where_line = start_line;
	return 1;
}

/* Resolves an include path relative to the directory of the current file. */
static char *
reader_include_path(const struct config_reader *reader, const char *name)
{
	const char *current = reader->files[reader->file_count - 1].path;
	const char *slash = strrchr(current, '/');

	if (name[0] == '/' || slash == NULL)
		return xstrdup(name);
	return xasprintf("%.*s/%s", (int)(slash - current), current, name);
}

static int
reader_directive_include(struct config_reader *reader, const char *directive,
    const char *arg, bool if_exists)
{
	char *path;
	int rc;

	if (!reader_active(reader))
		return 0;
	if (*arg == '\0')
		return reader_fail(reader, "missing file name after .%s",
		    directive);
	if (reader_expand(reader, arg, reader->expanded) < 0)
		return -1;

	path = reader_include_path(reader, reader->expanded);
	rc = reader_open_file(reader, path, if_exists);
	free(path);
	return rc < 0 ? -1 : 0;
}

static int
reader_directive_if(struct config_reader *reader, const char *directive,
    const char *arg)
{
	size_t name_len = reader_macro_name_len(arg);
	bool negate = strstr(directive, "ifn") != NULL;
	bool is_elif = strncmp(directive, "elif", 4) == 0;
	struct reader_file *file = &reader->files[reader->file_count - 1];
	struct reader_cond *cond;
	bool defined, parent_active;

	if (*arg == '\0')
		return reader_fail(reader, "missing macro name after .%s",
		    directive);
	if (name_len == 0 || arg[name_len] != '\0')
		return reader_fail(reader, "invalid macro name \"%s\" after .%s",
		    arg, directive);
	defined = reader_find_macro(reader, arg, name_len) != NULL;

	if (!is_elif) {
		if (reader->cond_depth >= CONFIG_IFDEF_DEPTH_MAX)
			return reader_fail(reader,
			    ".%s nested more than %d levels deep", directive,
			    CONFIG_IFDEF_DEPTH_MAX);
		parent_active = reader_active(reader);
		cond = &reader->conds[reader->cond_depth++];
		cond->parent_active = parent_active;
		cond->taken = defined != negate;
		cond->active = cond->parent_active && cond->taken;
		cond->else_seen = false;
		cond->directive = negate ? "ifndef" : "ifdef";
		cond->line = reader->where_line;
		return 0;
	}

	if (reader->cond_depth <= file->cond_base)
		return reader_fail(reader, ".%s without a matching .ifdef",
		    directive);
	cond = &reader->conds[reader->cond_depth - 1];
	if (cond->else_seen)
		return reader_fail(reader, ".%s after .else", directive);
	if (cond->taken) {
		cond->active = false;
	} else if (defined != negate) {
		cond->taken = true;
		cond->active = cond->parent_active;
	}
	return 0;
}

static int
reader_directive_else_endif(struct config_reader *reader,
    const char *directive, const char *arg)
{
	struct reader_file *file = &reader->files[reader->file_count - 1];
	struct reader_cond *cond;

	if (*arg != '\0')
		return reader_fail(reader, "unexpected text \"%s\" after .%s",
		    arg, directive);
	if (reader->cond_depth <= file->cond_base)
		return reader_fail(reader, ".%s without a matching .ifdef",
		    directive);
	cond = &reader->conds[reader->cond_depth - 1];

	if (strcmp(directive, "endif") == 0) {
		reader->cond_depth--;
		return 0;
	}
	if (cond->else_seen)
		return reader_fail(reader, ".else after .else");
	cond->else_seen = true;
	cond->active = cond->parent_active && !cond->taken;
	cond->taken = true;
	return 0;
}

/* Handles a line starting with '.'. */
static int
reader_directive(struct config_reader *reader, const char *line)
{
	char directive[32];
	const char *arg = line + 1;
	size_t n = 0;

	while (islower((unsigned char)*arg) || *arg == '_') {
		if (n + 1 < sizeof(directive))
			directive[n++] = *arg;
		arg++;
	}
	directive[n] = '\0';
	if (*arg != '\0' && !isspace((unsigned char)*arg))
		n = 0;	/* ".foo-bar" is no directive */
	while (isspace((unsigned char)*arg))
		arg++;

	if (n > 0 && strcmp(directive, "include") == 0)
		return reader_directive_include(reader, directive, arg, false);
	if (n > 0 && strcmp(directive, "include_if_exists") == 0)
		return reader_directive_include(reader, directive, arg, true);
	if (n > 0 && (strcmp(directive, "ifdef") == 0 ||
	    strcmp(directive, "ifndef") == 0 ||
	    strcmp(directive, "elifdef") == 0 ||
	    strcmp(directive, "elifndef") == 0))
		return reader_directive_if(reader, directive, arg);
	if (n > 0 && (strcmp(directive, "else") == 0 ||
	    strcmp(directive, "endif") == 0))
		return reader_directive_else_endif(reader, directive, arg);

	n = strcspn(line, " \t");
	return reader_fail(reader, "unknown directive \"%.*s\"", (int)n, line);
}

/*
 * Returns the position of the "=" when line is a macro definition, "NAME
 * = value" or "NAME == value", else NULL. Other lines that start with an
 * upper-case letter get their macros replaced like any line, as in Exim.
 */
static const char *
reader_macro_definition_equals(const char *line)
{
	size_t name_len = reader_macro_name_len(line);
	const char *p = line + name_len;

	if (name_len == 0)
		return NULL;
	while (isspace((unsigned char)*p))
		p++;
	return *p == '=' ? p : NULL;
}

/* Handles "NAME = value" and "NAME == value". */
static int
reader_macro_definition(struct config_reader *reader, const char *line,
    const char *equals)
{
	size_t name_len = reader_macro_name_len(line);
	const char *p = equals + 1;
	bool redefine = false;

	if (*p == '=') {
		redefine = true;
		p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	return reader_define(reader, line, name_len, p, redefine, false);
}

/* Closes the top file, which must have closed its own .ifdef blocks. */
static int
reader_close_file(struct config_reader *reader)
{
	struct reader_file *file = &reader->files[reader->file_count - 1];

	if (reader->cond_depth > file->cond_base) {
		const struct reader_cond *cond =
		    &reader->conds[reader->cond_depth - 1];

		reader->where_file = file->path;
		reader->where_line = cond->line;
		return reader_fail(reader,
		    ".%s without a matching .endif before the end of the file",
		    cond->directive);
	}
	fclose(file->fp);
	file->fp = NULL;
	reader->file_count--;
	return 0;
}

int
config_reader_open(const char *path, const char *const *defines,
    size_t define_count, struct config_reader **out, char **error)
{
	struct config_reader *reader = xcalloc(1, sizeof(*reader));

	*out = NULL;
	if (define_count > CONFIG_DEFINES_MAX) {
		reader_fail(reader, "too many -D definitions (max %d)",
		    CONFIG_DEFINES_MAX);
		goto fail;
	}
	for (size_t i = 0; i < define_count; i++) {
		if (reader_add_define(reader, defines[i]) < 0)
			goto fail;
	}
	if (reader_open_file(reader, path, false) < 0)
		goto fail;

	*out = reader;
	return 0;

fail:
	*error = reader->error;
	reader->error = NULL;
	config_reader_free(reader);
	return -1;
}

int
config_reader_next(struct config_reader *reader, const char **line,
    const char **file, int *line_number, char **error)
{
	while (reader->state == READER_RUNNING) {
		const char *text = reader->logical;
		const char *equals;
		int rc;

		if (reader->file_count == 0) {
			reader->state = READER_DONE;
			break;
		}
		rc = reader_read_logical(reader);
		if (rc < 0)
			break;
		if (rc == 0) {
			reader_close_file(reader);
			continue;
		}

		if (text[0] == '.') {
			reader_directive(reader, text);
			continue;
		}
		if (!reader_active(reader))
			continue;
		equals = reader_macro_definition_equals(text);
		if (equals != NULL) {
			reader_macro_definition(reader, text, equals);
			continue;
		}
		if (reader_expand(reader, text, reader->expanded) < 0)
			break;

		*line = reader->expanded;
		*file = reader->where_file;
		*line_number = reader->where_line;
		return 1;
	}

	if (reader->state == READER_DONE)
		return 0;
	*error = xstrdup(reader->error);
	return -1;
}

void
config_reader_free(struct config_reader *reader)
{
	if (reader == NULL)
		return;
	for (size_t i = 0; i < reader->file_count; i++)
		fclose(reader->files[i].fp);
	for (size_t i = 0; i < reader->path_count; i++)
		free(reader->paths[i]);
	free(reader->paths);
	for (size_t i = 0; i < reader->macro_count; i++) {
		free(reader->macros[i].name);
		free(reader->macros[i].value);
	}
	free(reader->macros);
	free(reader->error);
	free(reader);
}
