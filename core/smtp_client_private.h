/*
 * smtp_client_private.h - the state of one SMTP delivery, shared by
 * smtp_client.c (start, checks, result hand-over) and
 * smtp_client_session.c (the protocol on the event loop). Nothing else
 * includes it.
 */
#ifndef SLUICE_SMTP_CLIENT_PRIVATE_H
#define SLUICE_SMTP_CLIENT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "smtp_client.h"
#include "smtp_wire.h"

struct bufferevent;
struct clock_timer;
struct event;

/* The body is read in blocks of this size. The output buffer is filled
 * up to the high mark, and refilled when it drains below the low one. */
#define SMTP_BODY_BLOCK		16384
#define SMTP_OUTPUT_HIGH	(4 * SMTP_BODY_BLOCK)
#define SMTP_OUTPUT_LOW		SMTP_BODY_BLOCK

/* Maximum length of a command line the client writes, "RCPT
 * TO:<address>" or "MAIL FROM:<address> SIZE=n", with room to spare. */
#define SMTP_COMMAND_MAX	(SMTP_ADDRESS_MAX + 64)

enum smtp_client_state {
	SMTP_STATE_START,	/* waiting for the loop to start */
	SMTP_STATE_CONNECTING,
	SMTP_STATE_GREETING,
	SMTP_STATE_EHLO,
	SMTP_STATE_HELO,
	SMTP_STATE_MAIL,
	SMTP_STATE_RCPT,
	SMTP_STATE_DATA,
	SMTP_STATE_BODY,
	SMTP_STATE_DOT,
	SMTP_STATE_QUIT,
	SMTP_STATE_DONE,	/* closed; the callback runs from the loop */
};

struct smtp_client {
	struct event_base *base;
	enum smtp_client_state state;
	struct smtp_client_options options;
	smtp_client_cb cb;
	void *arg;

	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_storage source;
	socklen_t source_len;	/* 0 when not bound */
	char *helo_name;

	int fd;			/* owned here until the bufferevent takes it */
	struct event *connect_event;
	struct bufferevent *bev;
	struct clock_timer *timer;
	uint64_t started_usec;

	/* The message. */
	const struct spool_header *header;
	char *sender;
	int data_fd;
	off_t data_offset;	/* next byte of the -D file to read */
	off_t data_end;
	struct smtp_dot_encoder encoder;

	struct smtp_ehlo ehlo;
	struct smtp_reply reply;
	char after[SMTP_COMMAND_MAX];	/* the command a reply answers */
	size_t next_rcpt;		/* index of the RCPT being answered */
	size_t accepted;		/* recipients waiting for the dot */
	bool *decided;			/* per recipient */

	struct smtp_result *result;
};

/* The client's one timer: the start, a phase's deadline, or the
 * hand-over of the result (smtp_client_session.c). */
void smtp_client_timeout_cb(void *arg);

/* Closes the connection; accepts a client in any state. */
void smtp_client_close(struct smtp_client *client);

/* Ends the session: closes the connection now and hands the result over
 * from the loop. Every recipient must be decided. */
void smtp_client_finish(struct smtp_client *client);

/* Runs the callback with the result and frees the client. */
void smtp_client_deliver_result(struct smtp_client *client);

#endif
