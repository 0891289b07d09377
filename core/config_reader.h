/*
 * config_reader.h - the preprocessor of sluice.conf: turns files into
 * logical lines.
 *
 * The reader opens the main file and the files it includes, and it
 * carries out the .include and .ifdef family of directives. It joins
 * backslash-newline continuations, drops comments and blank lines, and
 * keeps the macro table. Each remaining line goes to the caller with its
 * macros replaced and surrounding white space trimmed. Only core/config.c
 * uses it.
 *
 * Macro replacement follows Exim 4.96 as observed: a macro name matches
 * anywhere in a line, not only as a whole word. Macros are applied in the
 * order they were defined, and a replacement text is scanned again only
 * by macros defined later. A new macro whose name contains the name of
 * an earlier one is rejected, so a longer name is always replaced before
 * a shorter one inside it.
 *
 * Every error is a string "FILE:LINE: what is wrong" (FILE as the path
 * was given or resolved) that the caller frees.
 */
#ifndef SLUICE_CONFIG_READER_H
#define SLUICE_CONFIG_READER_H

#include <stddef.h>

struct config_reader;

/*
 * Opens path and defines the macros of defines ("NAME" or "NAME=value",
 * from -D), which win over definitions of the same name in the files.
 * Returns 0 with *out set (the caller frees it with config_reader_free),
 * or -1 with *error set.
 */
int config_reader_open(const char *path, const char *const *defines,
    size_t define_count, struct config_reader **out, char **error);

/*
 * Reads the next logical line. Returns 1 with *line set (borrowed until
 * the next call) and the position of its first physical line in *file
 * (borrowed until config_reader_free) and *line_number. Returns 0 at the
 * end of the main file, and -1 with *error set on an error. After an
 * error or the end, every later call returns the same result again
 * without reading.
 */
int config_reader_next(struct config_reader *reader, const char **line,
    const char **file, int *line_number, char **error);

/* Closes every open file and frees the macro table. Accepts NULL. */
void config_reader_free(struct config_reader *reader);

#endif
