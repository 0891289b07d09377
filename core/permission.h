/*
 * permission.h - who may act on the queue: Exim's admin users.
 *
 * An admin user is root, the Exim user, or a member (by primary or
 * supplementary group) of the Exim group or of a group in admin_groups.
 * Only admin users may list the queue, start queue runs, force
 * deliveries or act on messages, except that the user who submitted a
 * message may remove it (-Mrm).
 *
 * The Exim user is exim_user. When exim_user is empty (development
 * setups, where the daemon keeps the user that started it), the owner of
 * spool_directory takes its place, since the daemon created it. The Exim
 * group is exim_group, else the primary group of that user.
 *
 * A caller is described by its uid, gid and supplementary groups. The
 * running process gets them from getuid(2) and getgroups(2), and a
 * client of a Unix socket from the kernel (SO_PEERCRED and
 * SO_PEERGROUPS), so a client cannot claim to be someone else.
 */
#ifndef SLUICE_PERMISSION_H
#define SLUICE_PERMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* Supplementary groups kept per caller; more are ignored, so a member of
 * an admin group listed past this bound is not recognised as admin. */
#define PERMISSION_GROUPS_MAX	256
/* Groups named in admin_groups. */
#define PERMISSION_ADMIN_GROUPS_MAX	32

struct permission_caller {
	pid_t pid;		/* 0 when unknown */
	uid_t uid;
	gid_t gid;
	gid_t groups[PERMISSION_GROUPS_MAX];
	size_t group_count;
};

struct permission_admins {
	uid_t exim_uid;
	gid_t exim_gid;
	gid_t admin_gids[PERMISSION_ADMIN_GROUPS_MAX];
	size_t admin_gid_count;
};

/*
 * Works out the admin users from exim_user, exim_group, admin_groups and
 * spool_directory. Returns 0, or -1 with *error set (caller frees) when
 * a named user or group does not exist, admin_groups has too many
 * items, or spool_directory cannot be examined while exim_user is empty.
 */
int permission_admins_load(const struct config *config,
    struct permission_admins *out, char **error);

/* Describes the running process by its real uid and gid. */
void permission_caller_self(struct permission_caller *out);

/*
 * Describes the process at the other end of a connected Unix socket.
 * Returns 0, or -1 with errno set when the kernel gives no credentials.
 * Where SO_PEERGROUPS is missing (Linux before 4.13), only the primary
 * group is known.
 */
int permission_caller_peer(int fd, struct permission_caller *out);

bool permission_is_admin(const struct permission_admins *admins,
    const struct permission_caller *caller);

/*
 * Writes the login name of uid into buf, or the number when the user
 * has no name, as Exim names users in "frozen by <user>".
 */
void permission_user_name(uid_t uid, char *buf, size_t size);

#endif
