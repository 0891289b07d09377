/*
 * config_table.h - the option table of sluice.conf, shared by the files
 * that read it (core/config.c) and print it (core/config_print.c). Only
 * core/config*.c include this header.
 */
#ifndef SLUICE_CONFIG_TABLE_H
#define SLUICE_CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

enum config_type {
	CONFIG_TYPE_STRING,
	CONFIG_TYPE_LIST,	/* a string in Exim list syntax */
	CONFIG_TYPE_BOOL,
	CONFIG_TYPE_INT,
	CONFIG_TYPE_SIZE,
	CONFIG_TYPE_TIME,	/* seconds, in an int */
	CONFIG_TYPE_TIMELIST,
	CONFIG_TYPE_MSGID_FORMAT,
};

/* Checks one item of a list option. For an invalid item it returns false
 * and sets *expected to a static description of a valid one. */
typedef bool (*config_item_check_fn)(const char *item,
    const char **expected);

struct config_option {
	const char *name;
	enum config_type type;
	size_t offset;			/* of the field in struct config */
	const char *default_text;	/* NULL: computed after loading */
	bool required;			/* an empty value is an error */
	int min, max;			/* CONFIG_TYPE_INT */
	config_item_check_fn check_item;	/* CONFIG_TYPE_LIST, or NULL */
	const char *help;
};

/* Every option, sorted by name: -bP prints in this order. */
extern const struct config_option config_options[];
extern const size_t config_option_count;

/* "hostlist", "domainlist", ..., indexed by enum config_list_kind. */
#define CONFIG_LIST_KIND_COUNT	4
extern const char *const config_list_kind_names[CONFIG_LIST_KIND_COUNT];

/* Returns the option called name, or NULL. */
const struct config_option *config_find_option(const char *name);

#endif
