/*
 * policy_objects.c - the objects handlers get: sluice.conn, sluice.tx
 * and sluice.msg.
 *
 * Each is a full userdata holding its class, the generation of the call
 * it was made for and a pointer to C data that is borrowed for that
 * call only. Every access goes through policy_objects_check(), which
 * verifies the class (the metatable against the one in the registry)
 * and the generation, so an object kept after its handler returned
 * raises a clear Lua error instead of reaching freed memory. Strings
 * are copied into Lua; tables such as msg.recipients are new copies on
 * each access. Unknown fields raise, so that a misspelt name is found
 * at once.
 */
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "policy_private.h"
#include "spool_header.h"
#include "util.h"

enum policy_class {
	POLICY_CLASS_CONN,
	POLICY_CLASS_TX,
	POLICY_CLASS_MSG,
	POLICY_CLASS_COUNT
};

static const char *const policy_class_names[POLICY_CLASS_COUNT] = {
	[POLICY_CLASS_CONN] = "sluice.conn",
	[POLICY_CLASS_TX] = "sluice.tx",
	[POLICY_CLASS_MSG] = "sluice.msg",
};

struct policy_object {
	enum policy_class class;
	uint64_t generation;
	void *data;		/* borrowed for the call of generation */
};

/* The ACL variables behind msg.queue_class, msg.tenant, msg.campaign. */
static const struct {
	const char *field;
	const char *acl;
} policy_msg_acl_fields[] = {
	{ "queue_class", SPOOL_ACL_CLASS },
	{ "tenant", SPOOL_ACL_TENANT },
	{ "campaign", SPOOL_ACL_CAMPAIGN },
};

/* Returns the live object of class at idx, or raises. */
static struct policy_object *
policy_objects_check(lua_State *L, int idx, enum policy_class class)
{
	struct policy_state *ps = policy_state_of(L);
	struct policy_object *o = luaL_checkudata(L, idx,
	    policy_class_names[class]);

	if (o->generation != ps->generation ||
	    ps->phase != POLICY_PHASE_HANDLER)
		luaL_argerror(L, idx, lua_pushfstring(L, "stale %s: the object "
		    "was kept after its handler returned",
		    policy_class_names[class]));
	return o;
}

static void
policy_objects_push(lua_State *L, enum policy_class class, void *data)
{
	struct policy_state *ps = policy_state_of(L);
	struct policy_object *o;

	luaL_checkstack(L, POLICY_STACK_SLOTS, "policy objects");
	o = lua_newuserdata(L, sizeof(*o));
	o->class = class;
	o->generation = ps->generation;
	o->data = data;
	luaL_getmetatable(L, policy_class_names[class]);
	lua_setmetatable(L, -2);
}

static int
policy_objects_no_field(lua_State *L, enum policy_class class,
    const char *key)
{
	return luaL_error(L, "%s has no field \"%s\"",
	    policy_class_names[class], key);
}

static void
policy_objects_push_string_or_nil(lua_State *L, const char *s)
{
	if (s == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, s);
}

/* Pushes a new table of the strings list[0..count). */
static void
policy_objects_push_list(lua_State *L, const char *const *list,
    size_t count)
{
	lua_createtable(L, count > INT32_MAX ? 0 : (int)count, 0);
	for (size_t i = 0; i < count; i++) {
		lua_pushstring(L, list[i]);
		lua_rawseti(L, -2, (int)(i + 1));
	}
}

/* ---- sluice.conn ---- */

static int
policy_conn_index(lua_State *L)
{
	const struct policy_conn *c =
	    policy_objects_check(L, 1, POLICY_CLASS_CONN)->data;
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "ip") == 0)
		lua_pushstring(L, c->ip);
	else if (strcmp(key, "port") == 0)
		lua_pushinteger(L, c->port);
	else if (strcmp(key, "local_ip") == 0)
		lua_pushstring(L, c->local_ip != NULL ? c->local_ip : "");
	else if (strcmp(key, "local_port") == 0)
		lua_pushinteger(L, c->local_port);
	else if (strcmp(key, "listener") == 0)
		lua_pushfstring(L, "[%s]:%d", c->local_ip != NULL ? c->local_ip :
		    "", c->local_port);
	else if (strcmp(key, "tls") == 0)
		lua_pushboolean(L, c->tls);
	else if (strcmp(key, "helo") == 0)
		policy_objects_push_string_or_nil(L, c->helo);
	else if (strcmp(key, "auth_id") == 0)
		policy_objects_push_string_or_nil(L, c->auth_id);
	else
		return policy_objects_no_field(L, POLICY_CLASS_CONN, key);
	return 1;
}

/* ---- sluice.tx ---- */

static int
policy_tx_index(lua_State *L)
{
	const struct policy_tx *tx =
	    policy_objects_check(L, 1, POLICY_CLASS_TX)->data;
	const char *key = luaL_checkstring(L, 2);

	if (strcmp(key, "sender") == 0)
		lua_pushstring(L, tx->sender);
	else if (strcmp(key, "recipients") == 0)
		policy_objects_push_list(L, tx->recipients, tx->recipient_count);
	else
		return policy_objects_no_field(L, POLICY_CLASS_TX, key);
	return 1;
}

/* ---- sluice.msg ---- */

/* Length of the field name at the start of a header field's text. */
static size_t
policy_msg_name_len(const struct spool_header_field *f)
{
	size_t n = 0;

	while (n < f->len && f->text[n] != ':' && f->text[n] != ' ' &&
	    f->text[n] != '\t')
		n++;
	return n;
}

static bool
policy_msg_field_is(const struct spool_header_field *f, const char *name,
    size_t len)
{
	return f->flag != SPOOL_FIELD_DELETED && policy_msg_name_len(f) == len &&
	    strncasecmp(f->text, name, len) == 0;
}

/* Pushes the value of a field: unfolded (line breaks removed) and
 * without white space at either end. */
static void
policy_msg_push_value(lua_State *L, const struct spool_header_field *f)
{
	const char *p = memchr(f->text, ':', f->len);
	const char *end = f->text + f->len;
	luaL_Buffer b;

	if (p == NULL) {
		lua_pushliteral(L, "");
		return;
	}
	p++;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\n' || end[-1] == '\r'))
		end--;
	luaL_buffinit(L, &b);
	for (; p < end; p++)
		if (*p != '\n' && *p != '\r')
			luaL_addchar(&b, *p);
	luaL_pushresult(&b);
}

/* Checks a header field name given by the policy: printable ASCII
 * without a colon (RFC 5322 2.2). */
static const char *
policy_msg_check_name(lua_State *L, int idx, size_t *len)
{
	const char *name = luaL_checklstring(L, idx, len);

	if (*len == 0 || *len > POLICY_HEADER_NAME_MAX)
		luaL_argerror(L, idx, "a header name has 1 to 128 characters");
	for (size_t i = 0; i < *len; i++)
		if (name[i] < 33 || name[i] > 126 || name[i] == ':')
			luaL_argerror(L, idx, "invalid character in a header name");
	return name;
}

/* msg:header(name): the first value, or nil. */
static int
policy_msg_header(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	size_t len;
	const char *name = policy_msg_check_name(L, 2, &len);

	for (size_t i = 0; i < m->header->fields_count; i++) {
		if (policy_msg_field_is(&m->header->fields[i], name, len)) {
			policy_msg_push_value(L, &m->header->fields[i]);
			return 1;
		}
	}
	lua_pushnil(L);
	return 1;
}

/* msg:headers(name): every value, in order, as a table. */
static int
policy_msg_headers(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	size_t len;
	const char *name = policy_msg_check_name(L, 2, &len);
	int n = 0;

	lua_newtable(L);
	for (size_t i = 0; i < m->header->fields_count; i++) {
		if (!policy_msg_field_is(&m->header->fields[i], name, len))
			continue;
		policy_msg_push_value(L, &m->header->fields[i]);
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

/* msg:add_header(name, value): appends "name: value". */
static int
policy_msg_add_header(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	size_t name_len, value_len, text_len;
	const char *name = policy_msg_check_name(L, 2, &name_len);
	const char *value = luaL_checklstring(L, 3, &value_len);
	const char *text;

	if (value_len > POLICY_HEADER_VALUE_MAX)
		return luaL_argerror(L, 3, "a header value has at most 4096 "
		    "bytes");
	for (size_t i = 0; i < value_len; i++)
		if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
			return luaL_argerror(L, 3, "a header value may not contain "
			    "CR, LF or NUL");
	if (m->header->fields_count >= SPOOL_HEADER_FIELDS_MAX)
		return luaL_error(L, "the message has %d header fields already",
		    SPOOL_HEADER_FIELDS_MAX);
	text = lua_pushfstring(L, "%s: %s\n", name, value);
	text_len = lua_objlen(L, -1);
	spool_header_add_field(m->header,
	    spool_field_flag_for_name(name, name_len), text, text_len);
	return 0;
}

/* msg:remove_header(name): marks every field of that name deleted, as
 * Exim does; returns how many there were. */
static int
policy_msg_remove_header(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	size_t len;
	const char *name = policy_msg_check_name(L, 2, &len);
	int removed = 0;

	for (size_t i = 0; i < m->header->fields_count; i++) {
		if (policy_msg_field_is(&m->header->fields[i], name, len)) {
			m->header->fields[i].flag = SPOOL_FIELD_DELETED;
			removed++;
		}
	}
	lua_pushinteger(L, removed);
	return 1;
}

static int
policy_msg_acl_index(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(policy_msg_acl_fields); i++)
		if (strcmp(key, policy_msg_acl_fields[i].field) == 0)
			return (int)i;
	return -1;
}

/* Upvalue 1: the table of methods. */
static int
policy_msg_index(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	const char *key = luaL_checkstring(L, 2);
	int acl;

	lua_getfield(L, lua_upvalueindex(1), key);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	if ((acl = policy_msg_acl_index(key)) >= 0)
		policy_objects_push_string_or_nil(L, spool_header_get_acl(
		    m->header, policy_msg_acl_fields[acl].acl));
	else if (strcmp(key, "id") == 0)
		lua_pushstring(L, m->id);
	else if (strcmp(key, "sender") == 0)
		lua_pushstring(L, m->sender);
	else if (strcmp(key, "recipients") == 0)
		policy_objects_push_list(L, m->recipients, m->recipient_count);
	else if (strcmp(key, "size") == 0)
		lua_pushnumber(L, (lua_Number)m->size);
	else if (strcmp(key, "client_ip") == 0)
		policy_objects_push_string_or_nil(L, m->client_ip);
	else if (strcmp(key, "auth_id") == 0)
		policy_objects_push_string_or_nil(L, m->auth_id);
	else
		return policy_objects_no_field(L, POLICY_CLASS_MSG, key);
	return 1;
}

/* msg.queue_class, msg.tenant and msg.campaign take 1 to 64 letters,
 * digits, '_', '-' or '.'; everything else is read-only. */
static int
policy_msg_newindex(lua_State *L)
{
	struct policy_message *m =
	    policy_objects_check(L, 1, POLICY_CLASS_MSG)->data;
	const char *key = luaL_checkstring(L, 2);
	size_t len;
	const char *value;
	int acl;

	if ((acl = policy_msg_acl_index(key)) < 0)
		return luaL_error(L, "sluice.msg field \"%s\" is read-only", key);
	value = luaL_checklstring(L, 3, &len);
	if (len == 0 || len > POLICY_NAME_MAX ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-.") != len)
		return luaL_error(L, "invalid %s \"%s\": use 1 to %d letters, "
		    "digits, '_', '-' or '.'", key, len > POLICY_NAME_MAX ? "..." :
		    value, POLICY_NAME_MAX);
	if (spool_header_set_acl(m->header, policy_msg_acl_fields[acl].acl,
	    value) == NULL)
		fatal_bug("ACL variable %s rejected", policy_msg_acl_fields[acl].acl);
	return 0;
}

/* ---- metatables ---- */

static int
policy_objects_tostring(lua_State *L)
{
	const struct policy_object *o = lua_touserdata(L, 1);

	lua_pushstring(L, o != NULL && o->class < POLICY_CLASS_COUNT ?
	    policy_class_names[o->class] : "sluice object");
	return 1;
}

static int
policy_objects_read_only(lua_State *L)
{
	return luaL_error(L, "%s is read-only", luaL_typename(L, 1));
}

/* Creates the metatable of class with __index fn (and, for msg, the
 * method table as its upvalue). */
static void
policy_objects_new_class(lua_State *L, enum policy_class class,
    lua_CFunction index, lua_CFunction newindex)
{
	static const luaL_Reg msg_methods[] = {
		{ "header", policy_msg_header },
		{ "headers", policy_msg_headers },
		{ "add_header", policy_msg_add_header },
		{ "remove_header", policy_msg_remove_header },
		{ NULL, NULL },
	};

	luaL_newmetatable(L, policy_class_names[class]);
	if (class == POLICY_CLASS_MSG) {
		lua_newtable(L);
		for (const luaL_Reg *r = msg_methods; r->name != NULL; r++) {
			lua_pushcfunction(L, r->func);
			lua_setfield(L, -2, r->name);
		}
		lua_pushcclosure(L, index, 1);
	} else {
		lua_pushcfunction(L, index);
	}
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, policy_objects_tostring);
	lua_setfield(L, -2, "__tostring");
	/* getmetatable() gets this string, and setmetatable() fails. */
	lua_pushstring(L, policy_class_names[class]);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void
policy_objects_open(lua_State *L)
{
	policy_objects_new_class(L, POLICY_CLASS_CONN, policy_conn_index,
	    policy_objects_read_only);
	policy_objects_new_class(L, POLICY_CLASS_TX, policy_tx_index,
	    policy_objects_read_only);
	policy_objects_new_class(L, POLICY_CLASS_MSG, policy_msg_index,
	    policy_msg_newindex);
}

void
policy_objects_push_conn(lua_State *L, const struct policy_conn *conn)
{
	policy_objects_push(L, POLICY_CLASS_CONN, (void *)conn);
}

void
policy_objects_push_tx(lua_State *L, const struct policy_tx *tx)
{
	policy_objects_push(L, POLICY_CLASS_TX, (void *)tx);
}

void
policy_objects_push_msg(lua_State *L, struct policy_message *msg)
{
	policy_objects_push(L, POLICY_CLASS_MSG, msg);
}
