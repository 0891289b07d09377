/*
 * permission.c - admin users and callers' credentials (see
 * permission.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "permission.h"
#include "util.h"

/* Linux 4.13 and later; older C libraries lack the name. */
#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS	59
#endif

static int
permission_lookup_group(const char *name, gid_t *gid, char **error)
{
	struct group *gr;

	errno = 0;
	if ((gr = getgrnam(name)) == NULL) {
		*error = xasprintf("group \"%s\" is not a known group", name);
		return -1;
	}
	*gid = gr->gr_gid;
	return 0;
}

int
permission_admins_load(const struct config *config,
    struct permission_admins *out, char **error)
{
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX];

	memset(out, 0, sizeof(*out));
	if (config->exim_user != NULL && config->exim_user[0] != '\0') {
		struct passwd *pw = getpwnam(config->exim_user);

		if (pw == NULL) {
			*error = xasprintf("exim_user \"%s\" is not a known user",
			    config->exim_user);
			return -1;
		}
		out->exim_uid = pw->pw_uid;
		out->exim_gid = pw->pw_gid;
	} else {
		struct stat st;

		if (stat(config->spool_directory, &st) < 0) {
			*error = xasprintf("cannot examine spool directory %s: %s",
			    config->spool_directory, strerror(errno));
			return -1;
		}
		out->exim_uid = st.st_uid;
		out->exim_gid = st.st_gid;
	}
	if (config->exim_group != NULL && config->exim_group[0] != '\0' &&
	    permission_lookup_group(config->exim_group, &out->exim_gid,
	    error) < 0)
		return -1;

	config_list_init(&iter, config->admin_groups != NULL ?
	    config->admin_groups : "");
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (out->admin_gid_count >= PERMISSION_ADMIN_GROUPS_MAX) {
			*error = xasprintf("admin_groups has more than %d groups",
			    PERMISSION_ADMIN_GROUPS_MAX);
			return -1;
		}
		if (permission_lookup_group(item,
		    &out->admin_gids[out->admin_gid_count], error) < 0)
			return -1;
		out->admin_gid_count++;
	}
	if (iter.error) {
		*error = xasprintf("admin_groups has an item longer than %d bytes",
		    CONFIG_LIST_ITEM_MAX - 1);
		return -1;
	}
	return 0;
}

void
permission_caller_self(struct permission_caller *out)
{
	int n;

	memset(out, 0, sizeof(*out));
	out->pid = getpid();
	out->uid = getuid();
	out->gid = getgid();
	n = getgroups(PERMISSION_GROUPS_MAX, out->groups);
	/* EINVAL: more groups than fit; the first ones are kept below. */
	if (n < 0 && errno == EINVAL) {
		gid_t *all;
		int total = getgroups(0, NULL);

		if (total > 0) {
			all = xcalloc((size_t)total, sizeof(*all));
			if ((n = getgroups(total, all)) > 0) {
				if (n > PERMISSION_GROUPS_MAX)
					n = PERMISSION_GROUPS_MAX;
				memcpy(out->groups, all, (size_t)n * sizeof(*all));
			}
			free(all);
		}
	}
	out->group_count = n > 0 ? (size_t)n : 0;
}

int
permission_caller_peer(int fd, struct permission_caller *out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	socklen_t groups_len = sizeof(out->groups);

	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	out->pid = cred.pid;
	out->uid = cred.uid;
	out->gid = cred.gid;
	/* ERANGE: more groups than fit. The kernel then fills nothing, so
	 * such a caller counts with its primary group only. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, out->groups,
	    &groups_len) == 0)
		out->group_count = groups_len / sizeof(gid_t);
	return 0;
}

static bool
permission_in_group(const struct permission_caller *caller, gid_t gid)
{
	if (caller->gid == gid)
		return true;
	for (size_t i = 0; i < caller->group_count; i++)
		if (caller->groups[i] == gid)
			return true;
	return false;
}

bool
permission_is_admin(const struct permission_admins *admins,
    const struct permission_caller *caller)
{
	if (caller->uid == 0 || caller->uid == admins->exim_uid)
		return true;
	if (permission_in_group(caller, admins->exim_gid))
		return true;
	for (size_t i = 0; i < admins->admin_gid_count; i++)
		if (permission_in_group(caller, admins->admin_gids[i]))
			return true;
	return false;
}

void
permission_user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL && pw->pw_name != NULL)
		snprintf(buf, size, "%s", pw->pw_name);
	else
		snprintf(buf, size, "%ld", (long)uid);
}
