/*
 * config_print.c - prints options as "exim -bP" does (see config.h).
 *
 * The layout was checked against Exim 4.96 (Debian 12):
 *  - "name = value", with the space after "=" even for an empty value;
 *  - booleans as "name" or "no_name", also under -n;
 *  - non-printing characters escaped as \n, \t or octal (\177);
 *  - "config_file" as the bare path;
 *  - unknown names reported on the same stream as the values.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_table.h"
#include "util.h"

static const void *
config_field_const(const struct config *config,
    const struct config_option *option)
{
	return (const char *)config + option->offset;
}

/* Prints s with non-printing characters escaped, as Exim's -bP does. */
static void
config_print_escaped(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	    p++) {
		switch (*p) {
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '\b': fputs("\\b", out); break;
		case '\v': fputs("\\v", out); break;
		case '\f': fputs("\\f", out); break;
		default:
			if (*p >= 0x20 && *p < 0x7f)
				putc(*p, out);
			else
				fprintf(out, "\\%03o", *p);
			break;
		}
	}
}

static void
config_print_option(FILE *out, const struct config *config,
    const struct config_option *option, bool value_only)
{
	const void *field = config_field_const(config, option);
	const struct config_timelist *list;
	char buf[64];

	if (option->type == CONFIG_TYPE_BOOL) {
		fprintf(out, "%s%s\n", *(const bool *)field ? "" : "no_",
		    option->name);
		return;
	}

	/* Exim prints "name = " with the space even when the value is
	 * empty. */
	if (!value_only)
		fprintf(out, "%s = ", option->name);
	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_LIST:
		config_print_escaped(out, *(char *const *)field);
		break;
	case CONFIG_TYPE_INT:
		fprintf(out, "%d", *(const int *)field);
		break;
	case CONFIG_TYPE_SIZE:
		/* NOTE: Exim 4.96 keeps message_size_limit as text and prints
		 * it as written, so its "52428800" is "50M" here. Values in
		 * this form ("50M", "100K", "1025") print the same in both. */
		config_format_size(*(const int64_t *)field, buf, sizeof(buf));
		fputs(buf, out);
		break;
	case CONFIG_TYPE_TIME:
		config_format_time(*(const int *)field, buf, sizeof(buf));
		fputs(buf, out);
		break;
	case CONFIG_TYPE_TIMELIST:
		list = field;
		for (size_t i = 0; i < list->count; i++) {
			config_format_time(list->values[i], buf, sizeof(buf));
			fprintf(out, "%s%s", i > 0 ? ":" : "", buf);
		}
		break;
	case CONFIG_TYPE_MSGID_FORMAT:
		fputs(*(const enum msgid_format *)field ==
		    MSGID_FORMAT_CLASSIC ? "classic" : "current", out);
		break;
	case CONFIG_TYPE_BOOL:
		break;
	}
	putc('\n', out);
}

/* Prints every named list called name, kinds in alphabetical order as
 * Exim does. Returns the number printed. */
static int
config_print_named_lists(FILE *out, const struct config *config,
    const char *name, bool value_only)
{
	static const enum config_list_kind order[] = {
		CONFIG_ADDRESSLIST, CONFIG_DOMAINLIST, CONFIG_HOSTLIST,
		CONFIG_LOCALPARTLIST,
	};
	int found = 0;

	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		const char *value = config_named_list(config, order[i], name);

		if (value == NULL)
			continue;
		if (!value_only)
			fprintf(out, "%s %s = ", config_list_kind_names[order[i]],
			    name);
		config_print_escaped(out, value);
		putc('\n', out);
		found++;
	}
	return found;
}

int
config_print(FILE *out, const struct config *config, const char *name,
    bool value_only)
{
	const struct config_option *option;

	if (name == NULL) {
		for (size_t i = 0; i < config_option_count; i++)
			config_print_option(out, config, &config_options[i],
			    value_only);
		return 0;
	}

	if (strcmp(name, "config_file") == 0) {
		fprintf(out, "%s\n", config->config_file);
		return 0;
	}
	if (name[0] == '+') {
		if (config_print_named_lists(out, config, name + 1,
		    value_only) > 0)
			return 0;
		fprintf(out, "no address, domain, host, or local part list "
		    "called \"%s\" exists\n", name + 1);
		return -1;
	}

	option = config_find_option(name);
	if (option == NULL) {
		fprintf(out, "%s is not a known option\n", name);
		return -1;
	}
	config_print_option(out, config, option, value_only);
	return 0;
}

void
config_print_help(FILE *out)
{
	static const char *const type_names[] = {
		[CONFIG_TYPE_STRING] = "string",
		[CONFIG_TYPE_LIST] = "list",
		[CONFIG_TYPE_BOOL] = "boolean",
		[CONFIG_TYPE_INT] = "integer",
		[CONFIG_TYPE_SIZE] = "size",
		[CONFIG_TYPE_TIME] = "time",
		[CONFIG_TYPE_TIMELIST] = "time list",
		[CONFIG_TYPE_MSGID_FORMAT] = "current or classic",
	};

	for (size_t i = 0; i < config_option_count; i++) {
		const struct config_option *option = &config_options[i];
		const char *def = option->default_text;

		if (def == NULL || def[0] == '\0')
			def = "unset";
		fprintf(out, "%s (%s, default: %s)\n    %s\n", option->name,
		    type_names[option->type], def, option->help);
	}
}
