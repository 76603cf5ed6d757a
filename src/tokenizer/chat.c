/* Chat templates: a small Jinja2 interpreter (see chat.h for what it renders and how).
 *
 * Pipeline: the template source is split into text / {{ }} / {% %} segments (comments dropped,
 * whitespace control, trim_blocks and lstrip_blocks applied as Jinja's lexer does), segments are
 * parsed into a statement tree with expression trees (Jinja's operator precedence), and the tree
 * is executed over Python-like values. Every allocation of a render lives in one arena freed at
 * the end; errors longjmp back to sk_chat_render with a message naming the line and construct.
 *
 * Supported: {{ }}, {% if/elif/else %}, {% for x in ... [if ...] %} with else, loop.* and
 * break/continue, {% set x = ... %}, {% set ns.attr = ... %}, {% set x %}...{% endset %},
 * {% generation %} (transparent); literals (strings, ints, floats, true/false/none, lists,
 * dicts, tuples), + - * / // % ** ~, comparisons (chained), in / not in, and/or/not, inline
 * if/else, attribute, subscript and slice access; the filters, tests, methods and functions in
 * the tables below. Anything else is an error naming it. */
#include "tokenizer/chat.h"
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

const char sk_chat_chatml_template[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

#define J_MAX_DEPTH 200           /* nesting of expressions and statements */
#define J_MAX_OUTPUT (64u << 20)  /* bytes of rendered text */
#define J_MAX_ITEMS 1000000       /* elements of a list built by range() or repetition */
#define J_MAX_MEMORY (512u << 20) /* bytes of arena for one render */

typedef struct jctx jctx;

/* ---- arena ---------------------------------------------------------------------------------- */

typedef struct ablk {
    struct ablk *next;
    size_t used, cap;
} ablk;

#define AHDR ((sizeof(ablk) + 15) & ~(size_t)15)

typedef struct jstr {
    const char *p;
    size_t n;
} jstr;

typedef enum jtype {
    JV_UNDEF, /* s: the name that was looked up (for messages), may be empty */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST,
    JV_DICT,
    JV_MACRO,
} jtype;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jstmt jstmt;

typedef struct jval {
    jtype t;
    union {
        bool b;
        int64_t i;
        double f;
        jstr s;
        jlist *l;
        jdict *d;
        const jstmt *m;
    } u;
} jval;

struct jlist {
    jval *v;
    size_t n, cap;
    bool tuple;
};

struct jdict {
    jstr *k;
    jval *v;
    size_t n, cap;
    bool ns; /* a namespace(): attributes may be assigned */
};

typedef struct jsb {
    char *p;
    size_t n, cap;
} jsb;

struct jctx {
    ablk *ar;
    jmp_buf jb;
    size_t ar_total;
    char err[1024];
    jsb *out;
    jdict **frames;
    int n_frames, cap_frames;
    int depth;
    bool brk, cont;
};

static _Noreturn void jfail(jctx *c, int line, const char *fmt, ...) SK_PRINTF(3, 4);
static _Noreturn void jfail(jctx *c, int line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(c->err, sizeof c->err, "chat template: line %d: %s", line, msg);
    else
        snprintf(c->err, sizeof c->err, "chat template: %s", msg);
    longjmp(c->jb, 1);
}

static void *ar_alloc(jctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!c->ar || c->ar->cap - c->ar->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (c->ar_total + cap > J_MAX_MEMORY)
            jfail(c, 0, "rendering needs more than %u MB of memory", J_MAX_MEMORY >> 20);
        c->ar_total += cap;
        ablk *b = malloc(AHDR + cap);
        if (!b) jfail(c, 0, "out of memory");
        b->next = c->ar;
        b->used = 0;
        b->cap = cap;
        c->ar = b;
    }
    void *p = (char *)c->ar + AHDR + c->ar->used;
    c->ar->used += n;
    return p;
}

static void ar_free(jctx *c) {
    while (c->ar) {
        ablk *n = c->ar->next;
        free(c->ar);
        c->ar = n;
    }
}

static void sb_add(jctx *c, jsb *b, const char *s, size_t n) {
    if (b->cap - b->n < n || !b->p) {
        if (b->n + n > J_MAX_OUTPUT)
            jfail(c, 0, "the rendered text exceeds %u bytes", J_MAX_OUTPUT);
        size_t cap = (b->n + n) * 2 + 64;
        char *p = ar_alloc(c, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_adds(jctx *c, jsb *b, const char *s) { sb_add(c, b, s, strlen(s)); }

static void sb_addf(jctx *c, jsb *b, const char *fmt, ...) SK_PRINTF(3, 4);
static void sb_addf(jctx *c, jsb *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(c, b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static jstr sb_str(jsb *b) { return (jstr){b->p ? b->p : "", b->n}; }

static jstr jstr_dup(jctx *c, const char *s, size_t n) {
    char *p = ar_alloc(c, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return (jstr){p, n};
}

static bool jstr_eq(jstr a, const char *s) { return a.n == strlen(s) && memcmp(a.p, s, a.n) == 0; }
static bool jstr_same(jstr a, jstr b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* ---- values --------------------------------------------------------------------------------- */

static jval v_undef(jstr name) { return (jval){.t = JV_UNDEF, .u.s = name}; }
static jval v_none(void) { return (jval){.t = JV_NONE}; }
static jval v_bool(bool b) { return (jval){.t = JV_BOOL, .u.b = b}; }
static jval v_int(int64_t i) { return (jval){.t = JV_INT, .u.i = i}; }
static jval v_float(double f) { return (jval){.t = JV_FLOAT, .u.f = f}; }
static jval v_str(jstr s) { return (jval){.t = JV_STR, .u.s = s}; }
static jval v_cstr(const char *s) { return v_str((jstr){s, strlen(s)}); }

static jlist *list_new(jctx *c, size_t cap) {
    jlist *l = ar_alloc(c, sizeof *l);
    memset(l, 0, sizeof *l);
    if (cap) {
        l->v = ar_alloc(c, sizeof *l->v * cap);
        l->cap = cap;
    }
    return l;
}

static void list_push(jctx *c, jlist *l, jval v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jval *nv = ar_alloc(c, sizeof *nv * cap);
        if (l->n) memcpy(nv, l->v, sizeof *nv * l->n);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static jval v_list(jlist *l) { return (jval){.t = JV_LIST, .u.l = l}; }

static jdict *dict_new(jctx *c) {
    jdict *d = ar_alloc(c, sizeof *d);
    memset(d, 0, sizeof *d);
    return d;
}

static jval *dict_find(jdict *d, jstr k) {
    for (size_t i = 0; i < d->n; i++)
        if (jstr_same(d->k[i], k)) return &d->v[i];
    return NULL;
}

static void dict_set(jctx *c, jdict *d, jstr k, jval v) {
    jval *old = dict_find(d, k);
    if (old) {
        *old = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jstr *nk = ar_alloc(c, sizeof *nk * cap);
        jval *nv = ar_alloc(c, sizeof *nv * cap);
        if (d->n) {
            memcpy(nk, d->k, sizeof *nk * d->n);
            memcpy(nv, d->v, sizeof *nv * d->n);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
}

static jval v_dict(jdict *d) { return (jval){.t = JV_DICT, .u.d = d}; }

static const char *type_name(jval v) {
    switch (v.t) {
    case JV_UNDEF: return "undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return v.u.d->ns ? "Namespace" : "dict";
    case JV_MACRO: return "macro";
    }
    return "?";
}

/* An undefined value whose name starts with \x01 carries a whole message. */
static _Noreturn void fail_undef(jctx *c, int line, jval v) {
    jstr s = v.u.s;
    if (s.n > 1 && s.p[0] == 1) jfail(c, line, "%.*s", (int)(s.n - 1), s.p + 1);
    if (s.n) jfail(c, line, "'%.*s' is undefined", (int)s.n, s.p);
    jfail(c, line, "a value is undefined");
}

static jval v_undef_msg(jctx *c, const char *fmt, ...) SK_PRINTF(2, 3);
static jval v_undef_msg(jctx *c, const char *fmt, ...) {
    char tmp[256];
    tmp[0] = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp + 1, sizeof tmp - 1, fmt, ap);
    va_end(ap);
    return v_undef(jstr_dup(c, tmp, strlen(tmp)));
}

static bool truthy(jval v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s.n > 0;
    case JV_LIST: return v.u.l->n > 0;
    case JV_DICT: return v.u.d->n > 0;
    case JV_MACRO: return true;
    }
    return false;
}

static bool is_num(jval v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
static double num_f(jval v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.u.b ? 1.0 : 0.0;
}
static int64_t num_i(jval v) { return v.t == JV_INT ? v.u.i : v.t == JV_BOOL ? v.u.b : 0; }

/* ---- UTF-8 and Python string helpers -------------------------------------------------------- */

/* Python's str.isspace(). */
static bool py_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Decodes one code point at s[0..n) (an ill-formed byte decodes as itself, length 1). */
static int cp_at(const char *s, size_t n, uint32_t *cp) {
    int L = sk_utf8_seq((const uint8_t *)s, n, cp);
    if (L > 0) return L;
    *cp = (uint8_t)s[0];
    return 1;
}

/* Length of the code point ending at s[n-1]. */
static int cp_before(const char *s, size_t n, uint32_t *cp) {
    int k = 1;
    while (k < 4 && (size_t)k < n && ((uint8_t)s[n - (size_t)k] & 0xC0) == 0x80) k++;
    int L = sk_utf8_seq((const uint8_t *)s + n - k, (size_t)k, cp);
    if (L == k) return k;
    *cp = (uint8_t)s[n - 1];
    return 1;
}

static size_t cp_count(jstr s) {
    size_t n = 0;
    uint32_t cp;
    for (size_t i = 0; i < s.n; i += (size_t)cp_at(s.p + i, s.n - i, &cp)) n++;
    return n;
}

/* Byte offsets of each code point of s, plus s.n at the end: [count + 1]. */
static size_t *cp_offsets(jctx *c, jstr s, size_t *count) {
    size_t n = cp_count(s);
    size_t *o = ar_alloc(c, sizeof *o * (n + 1));
    size_t k = 0;
    uint32_t cp;
    for (size_t i = 0; i < s.n; i += (size_t)cp_at(s.p + i, s.n - i, &cp)) o[k++] = i;
    o[k] = s.n;
    *count = n;
    return o;
}

static bool in_chars(uint32_t cp, const jstr *chars) {
    if (!chars) return py_space(cp);
    uint32_t x;
    for (size_t i = 0; i < chars->n;) {
        i += (size_t)cp_at(chars->p + i, chars->n - i, &x);
        if (x == cp) return true;
    }
    return false;
}

/* str.strip / lstrip / rstrip (chars NULL: whitespace). */
static jstr py_strip(jstr s, const jstr *chars, bool left, bool right) {
    size_t a = 0, b = s.n;
    uint32_t cp;
    while (left && a < b) {
        int L = cp_at(s.p + a, b - a, &cp);
        if (!in_chars(cp, chars)) break;
        a += (size_t)L;
    }
    while (right && b > a) {
        int L = cp_before(s.p + a, b - a, &cp);
        if (!in_chars(cp, chars)) break;
        b -= (size_t)L;
    }
    return (jstr){s.p + a, b - a};
}

static jstr ascii_case(jctx *c, jstr s, int mode /* 0 lower, 1 upper, 2 capitalize, 3 title */) {
    char *p = ar_alloc(c, s.n + 1);
    bool prev_alpha = false;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        bool up = mode == 1 || (mode == 2 && i == 0) || (mode == 3 && !prev_alpha);
        if (up && ch >= 'a' && ch <= 'z') ch = (char)(ch - 32);
        if (!up && ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
        p[i] = ch;
        prev_alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ((uint8_t)ch >= 0x80);
    }
    p[s.n] = 0;
    return (jstr){p, s.n};
}

/* ---- printing: str(), repr(), json ---------------------------------------------------------- */

/* Python's repr(float). */
static void fmt_float(jctx *c, jsb *b, double f) {
    if (isnan(f)) {
        sb_adds(c, b, "nan");
        return;
    }
    if (isinf(f)) {
        sb_adds(c, b, f < 0 ? "-inf" : "inf");
        return;
    }
    char e[64];
    int prec = 0;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, f);
        if (strtod(e, NULL) == f) break;
    }
    snprintf(e, sizeof e, "%.*e", prec, f);
    /* e = [-]d[.ddd]e[+-]XX */
    char digits[32];
    int nd = 0;
    const char *p = e;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (neg) sb_adds(c, b, "-");
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            sb_adds(c, b, "0.");
            for (int i = 0; i < -exp - 1; i++) sb_adds(c, b, "0");
            sb_add(c, b, digits, (size_t)nd);
        } else {
            for (int i = 0; i <= exp; i++) sb_add(c, b, i < nd ? &digits[i] : "0", 1);
            sb_adds(c, b, ".");
            if (nd > exp + 1)
                sb_add(c, b, digits + exp + 1, (size_t)(nd - exp - 1));
            else
                sb_adds(c, b, "0");
        }
    } else {
        sb_add(c, b, digits, 1);
        if (nd > 1) {
            sb_adds(c, b, ".");
            sb_add(c, b, digits + 1, (size_t)(nd - 1));
        }
        sb_addf(c, b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void fmt_repr(jctx *c, jsb *b, jval v, int depth);

static void fmt_str(jctx *c, jsb *b, jval v, int depth) {
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: sb_adds(c, b, "None"); return;
    case JV_BOOL: sb_adds(c, b, v.u.b ? "True" : "False"); return;
    case JV_INT: sb_addf(c, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: fmt_float(c, b, v.u.f); return;
    case JV_STR: sb_add(c, b, v.u.s.p, v.u.s.n); return;
    case JV_LIST:
    case JV_DICT: fmt_repr(c, b, v, depth); return;
    case JV_MACRO: sb_adds(c, b, "<Macro>"); return;
    }
}

static void fmt_repr(jctx *c, jsb *b, jval v, int depth) {
    if (depth > J_MAX_DEPTH) jfail(c, 0, "value nested too deeply to print");
    if (v.t == JV_STR) {
        jstr s = v.u.s;
        bool sq = memchr(s.p, '\'', s.n) != NULL, dq = memchr(s.p, '"', s.n) != NULL;
        char q = sq && !dq ? '"' : '\'';
        sb_add(c, b, &q, 1);
        for (size_t i = 0; i < s.n; i++) {
            uint8_t ch = (uint8_t)s.p[i];
            if (ch == '\\' || ch == (uint8_t)q) {
                sb_adds(c, b, "\\");
                sb_add(c, b, s.p + i, 1);
            } else if (ch == '\n') {
                sb_adds(c, b, "\\n");
            } else if (ch == '\r') {
                sb_adds(c, b, "\\r");
            } else if (ch == '\t') {
                sb_adds(c, b, "\\t");
            } else if (ch < 0x20 || ch == 0x7F) {
                sb_addf(c, b, "\\x%02x", ch);
            } else {
                sb_add(c, b, s.p + i, 1);
            }
        }
        sb_add(c, b, &q, 1);
    } else if (v.t == JV_LIST) {
        jlist *l = v.u.l;
        sb_adds(c, b, l->tuple ? "(" : "[");
        for (size_t i = 0; i < l->n; i++) {
            if (i) sb_adds(c, b, ", ");
            fmt_repr(c, b, l->v[i], depth + 1);
        }
        if (l->tuple && l->n == 1) sb_adds(c, b, ",");
        sb_adds(c, b, l->tuple ? ")" : "]");
    } else if (v.t == JV_DICT) {
        jdict *d = v.u.d;
        if (d->ns) sb_adds(c, b, "<Namespace ");
        sb_adds(c, b, "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i) sb_adds(c, b, ", ");
            fmt_repr(c, b, v_str(d->k[i]), depth + 1);
            sb_adds(c, b, ": ");
            fmt_repr(c, b, d->v[i], depth + 1);
        }
        sb_adds(c, b, "}");
        if (d->ns) sb_adds(c, b, ">");
    } else if (v.t == JV_UNDEF) {
        sb_adds(c, b, "Undefined");
    } else {
        fmt_str(c, b, v, depth);
    }
}

static jstr to_str(jctx *c, jval v) {
    if (v.t == JV_STR) return v.u.s;
    jsb b = {0};
    fmt_str(c, &b, v, 0);
    return sb_str(&b);
}

static void json_string(jctx *c, jsb *b, jstr s) {
    sb_adds(c, b, "\"");
    for (size_t i = 0; i < s.n; i++) {
        uint8_t ch = (uint8_t)s.p[i];
        switch (ch) {
        case '"': sb_adds(c, b, "\\\""); break;
        case '\\': sb_adds(c, b, "\\\\"); break;
        case '\n': sb_adds(c, b, "\\n"); break;
        case '\r': sb_adds(c, b, "\\r"); break;
        case '\t': sb_adds(c, b, "\\t"); break;
        case '\b': sb_adds(c, b, "\\b"); break;
        case '\f': sb_adds(c, b, "\\f"); break;
        default:
            if (ch < 0x20)
                sb_addf(c, b, "\\u%04x", ch);
            else
                sb_add(c, b, s.p + i, 1);
        }
    }
    sb_adds(c, b, "\"");
}

static void json_indent(jctx *c, jsb *b, int indent, int level) {
    sb_adds(c, b, "\n");
    for (int i = 0; i < indent * level; i++) sb_adds(c, b, " ");
}

/* json.dumps(v, ensure_ascii=False, indent=indent (< 0: None)), as transformers' tojson. */
static void fmt_json(jctx *c, jsb *b, jval v, int indent, int level, int line) {
    if (level > J_MAX_DEPTH) jfail(c, line, "tojson: value nested too deeply");
    const char *item_sep = indent >= 0 ? "," : ", ";
    switch (v.t) {
    case JV_UNDEF: fail_undef(c, line, v);
    case JV_NONE: sb_adds(c, b, "null"); return;
    case JV_BOOL: sb_adds(c, b, v.u.b ? "true" : "false"); return;
    case JV_INT: sb_addf(c, b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT:
        if (isnan(v.u.f))
            sb_adds(c, b, "NaN");
        else if (isinf(v.u.f))
            sb_adds(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            fmt_float(c, b, v.u.f);
        return;
    case JV_STR: json_string(c, b, v.u.s); return;
    case JV_LIST:
        sb_adds(c, b, "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_adds(c, b, item_sep);
            if (indent >= 0) json_indent(c, b, indent, level + 1);
            fmt_json(c, b, v.u.l->v[i], indent, level + 1, line);
        }
        if (indent >= 0 && v.u.l->n) json_indent(c, b, indent, level);
        sb_adds(c, b, "]");
        return;
    case JV_DICT:
        sb_adds(c, b, "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) sb_adds(c, b, item_sep);
            if (indent >= 0) json_indent(c, b, indent, level + 1);
            json_string(c, b, v.u.d->k[i]);
            sb_adds(c, b, ": ");
            fmt_json(c, b, v.u.d->v[i], indent, level + 1, line);
        }
        if (indent >= 0 && v.u.d->n) json_indent(c, b, indent, level);
        sb_adds(c, b, "}");
        return;
    case JV_MACRO: jfail(c, line, "tojson: a macro cannot be serialized");
    }
}

/* ---- template lexer: segments --------------------------------------------------------------- */

enum { SEG_TEXT, SEG_VAR, SEG_BLOCK };

typedef struct seg {
    int kind;
    const char *p;
    size_t n;
    int line;
} seg;

typedef struct seg_vec {
    seg *v;
    int n, cap;
} seg_vec;

static void seg_push(jctx *c, seg_vec *s, int kind, const char *p, size_t n, int line) {
    if (kind == SEG_TEXT && n == 0) return;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        seg *nv = ar_alloc(c, sizeof *nv * (size_t)cap);
        if (s->n) memcpy(nv, s->v, sizeof *nv * (size_t)s->n);
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = (seg){kind, p, n, line};
}

static bool ws_byte(char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

static int line_of(const char *src, const char *at) {
    int line = 1;
    for (const char *p = src; p < at; p++) line += *p == '\n';
    return line;
}

/* Splits the (newline-normalised) source into segments. */
static void lex_template(jctx *c, const char *src, size_t n, seg_vec *out) {
    size_t pos = 0;
    bool line_start = true;
    while (pos < n) {
        size_t t = pos;
        while (t + 1 < n &&
               !(src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#')))
            t++;
        if (t + 1 >= n) t = n;
        size_t text_end = t;
        char kind = t < n ? src[t + 1] : 0;
        char mod = t + 2 < n ? src[t + 2] : 0;
        if (t < n) {
            if (mod == '-') {
                while (text_end > pos && ws_byte(src[text_end - 1])) text_end--;
            } else if (mod != '+' && (kind == '%' || kind == '#')) {
                /* lstrip_blocks: spaces and tabs between a line start and a block tag go. */
                size_t lp = text_end;
                while (lp > pos && src[lp - 1] != '\n') lp--;
                bool only_ws = lp < text_end;
                for (size_t i = lp; i < text_end && only_ws; i++)
                    only_ws = ws_byte(src[i]) && src[i] != '\n';
                if ((lp > pos || line_start) && only_ws) text_end = lp;
            }
        }
        seg_push(c, out, SEG_TEXT, src + pos, text_end - pos, line_of(src, src + pos));
        if (t >= n) break;

        int line = line_of(src, src + t);
        size_t body = t + 2 + (mod == '-' || mod == '+' ? 1 : 0);
        size_t e = body;
        bool found = false;
        if (kind == '#') {
            for (; e + 1 < n; e++)
                if (src[e] == '#' && src[e + 1] == '}') {
                    found = true;
                    break;
                }
        } else {
            char close = kind == '{' ? '}' : '%';
            int bal = 0;
            for (; e < n; e++) {
                char ch = src[e];
                if (ch == '\'' || ch == '"') {
                    size_t k = e + 1;
                    while (k < n && src[k] != ch) k += src[k] == '\\' ? 2 : 1;
                    if (k >= n) break;
                    e = k;
                    continue;
                }
                if (bal == 0 && ch == close && e + 1 < n && src[e + 1] == '}') {
                    found = true;
                    break;
                }
                if (ch == '(' || ch == '[' || ch == '{') bal++;
                if ((ch == ')' || ch == ']' || ch == '}') && bal > 0) bal--;
            }
        }
        if (!found)
            jfail(c, line, "unterminated '%s' tag", kind == '{' ? "{{" : kind == '%' ? "{%" : "{#");
        size_t cend = e;
        char emod = cend > body ? src[cend - 1] : 0;
        if (emod == '-' || (emod == '+' && kind == '%')) cend--;
        size_t after = e + 2;
        if (emod == '-') {
            size_t a0 = after;
            while (after < n && ws_byte(src[after])) after++;
            line_start = after > a0 && src[after - 1] == '\n';
        } else if (kind != '{' && emod != '+' && after < n && src[after] == '\n') {
            after++; /* trim_blocks */
            line_start = true;
        } else {
            line_start = false;
        }
        if (kind != '#')
            seg_push(c, out, kind == '{' ? SEG_VAR : SEG_BLOCK, src + body, cend - body, line);
        pos = after;
    }
}

/* ---- expression tokens ---------------------------------------------------------------------- */

enum { T_END, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

typedef struct jtok {
    int t;
    jstr s; /* name / operator text / decoded string */
    int64_t i;
    double f;
} jtok;

typedef struct tstream {
    jtok *v;
    int n, i;
    int line;
} tstream;

static int hexval(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Decodes a Python string literal body (unicode-escape). */
static jstr decode_string(jctx *c, const char *p, size_t n, int line) {
    jsb b = {0};
    sb_add(c, &b, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 >= n) {
            sb_add(c, &b, p + i, 1);
            continue;
        }
        char e = p[++i];
        const char *simple = NULL;
        switch (e) {
        case 'n': simple = "\n"; break;
        case 't': simple = "\t"; break;
        case 'r': simple = "\r"; break;
        case '\\': simple = "\\"; break;
        case '\'': simple = "'"; break;
        case '"': simple = "\""; break;
        case 'a': simple = "\a"; break;
        case 'b': simple = "\b"; break;
        case 'f': simple = "\f"; break;
        case 'v': simple = "\v"; break;
        case '\n': simple = ""; break;
        default: break;
        }
        if (simple) {
            sb_adds(c, &b, simple);
            continue;
        }
        uint32_t cp = 0;
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            for (int k = 0; k < digits; k++) {
                int h = i + 1 + (size_t)k < n ? hexval(p[i + 1 + (size_t)k]) : -1;
                if (h < 0) jfail(c, line, "bad \\%c escape in a string literal", e);
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)digits;
        } else if (e >= '0' && e <= '7') {
            cp = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '7'; k++)
                cp = cp * 8 + (uint32_t)(p[++i] - '0');
        } else {
            sb_add(c, &b, p + i - 1, 2); /* unknown escapes stay as they are */
            continue;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            jfail(c, line, "escape \\%c in a string literal is not a valid character", e);
        char u[4];
        sb_add(c, &b, u, (size_t)sk_utf8_put(cp, u));
    }
    return sb_str(&b);
}

static void tokenize_expr(jctx *c, const seg *sg, tstream *ts) {
    const char *p = sg->p;
    size_t n = sg->n;
    int cap = 16;
    ts->v = ar_alloc(c, sizeof *ts->v * (size_t)cap);
    ts->n = ts->i = 0;
    ts->line = sg->line;
    size_t i = 0;
    for (;;) {
        while (i < n && ws_byte(p[i])) i++;
        if (ts->n + 1 >= cap) {
            cap *= 2;
            jtok *nv = ar_alloc(c, sizeof *nv * (size_t)cap);
            memcpy(nv, ts->v, sizeof *nv * (size_t)ts->n);
            ts->v = nv;
        }
        jtok *t = &ts->v[ts->n];
        memset(t, 0, sizeof *t);
        if (i >= n) {
            t->t = T_END;
            break;
        }
        char ch = p[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            size_t s = i;
            while (i < n && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                             (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
                i++;
            t->t = T_NAME;
            t->s = (jstr){p + s, i - s};
        } else if (ch >= '0' && ch <= '9') {
            size_t s = i;
            bool fl = false;
            while (i < n && ((p[i] >= '0' && p[i] <= '9') || p[i] == '_')) i++;
            if (i + 1 < n && p[i] == '.' && p[i + 1] >= '0' && p[i + 1] <= '9') {
                fl = true;
                i++;
                while (i < n && ((p[i] >= '0' && p[i] <= '9') || p[i] == '_')) i++;
            }
            if (i < n && (p[i] == 'e' || p[i] == 'E')) {
                size_t k = i + 1;
                if (k < n && (p[k] == '+' || p[k] == '-')) k++;
                if (k < n && p[k] >= '0' && p[k] <= '9') {
                    fl = true;
                    i = k;
                    while (i < n && p[i] >= '0' && p[i] <= '9') i++;
                }
            }
            char num[64];
            size_t k = 0;
            for (size_t j = s; j < i && k + 1 < sizeof num; j++)
                if (p[j] != '_') num[k++] = p[j];
            num[k] = 0;
            if (fl) {
                t->t = T_FLOAT;
                t->f = strtod(num, NULL);
            } else {
                t->t = T_INT;
                char *end;
                unsigned long long u = strtoull(num, &end, 10);
                if (u > INT64_MAX || k >= 20)
                    jfail(c, sg->line, "integer literal %s is too large", num);
                t->i = (int64_t)u;
            }
        } else if (ch == '\'' || ch == '"') {
            size_t s = ++i;
            while (i < n && p[i] != ch) i += p[i] == '\\' ? 2 : 1;
            if (i >= n) jfail(c, sg->line, "unterminated string literal");
            t->t = T_STR;
            t->s = decode_string(c, p + s, i - s, sg->line);
            i++;
        } else {
            static const char *const two[] = {"==", "!=", "<=", ">=", "//", "**"};
            t->t = T_OP;
            t->s = (jstr){p + i, 1};
            for (size_t k = 0; k < sizeof two / sizeof *two; k++)
                if (i + 1 < n && p[i] == two[k][0] && p[i + 1] == two[k][1]) t->s.n = 2;
            if (t->s.n == 1 && !strchr("+-*/%~<>()[]{}.,:|=", ch))
                jfail(c, sg->line, "unexpected character '%c' in an expression", ch);
            i += t->s.n;
        }
        ts->n++;
    }
}

/* ---- syntax trees --------------------------------------------------------------------------- */

enum {
    E_LIT,
    E_NAME,
    E_ATTR,
    E_INDEX,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_NOT,
    E_NEG,
    E_POS,
    E_BIN,
    E_AND,
    E_OR,
    E_CMP,
    E_COND,
    E_LIST,
    E_TUPLE,
    E_DICT,
};

enum { C_EQ, C_NE, C_LT, C_GT, C_LE, C_GE, C_IN, C_NOTIN };

typedef struct jexpr jexpr;

typedef struct jarg {
    jstr name; /* empty: positional */
    jexpr *e;
} jarg;

struct jexpr {
    int kind;
    int line;
    char op;   /* E_BIN: + - * / F(//) % P(**) ~ */
    bool neg;  /* E_TEST: is not */
    jval lit;  /* E_LIT */
    jstr name; /* E_NAME, E_ATTR, E_FILTER, E_TEST */
    jexpr *a, *b, *c, *d;
    jarg *args; /* E_CALL, E_FILTER, E_TEST; E_LIST/E_TUPLE items; E_DICT keys (name) */
    int n_args;
    jexpr **items; /* E_CMP operands, E_DICT values */
    int *cmp;      /* E_CMP ops [n_args - 1] */
};

enum { S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_BREAK, S_CONTINUE, S_BLOCK, S_MACRO };

typedef struct jbody {
    jstmt **s;
    int n, cap;
} jbody;

struct jstmt {
    int kind;
    int line;
    jstr text;     /* S_TEXT */
    jexpr *e;      /* S_OUT, S_SET value, S_FOR iterable */
    jexpr **conds; /* S_IF [n_cond] */
    jbody *bodies; /* S_IF [n_cond] */
    int n_cond;
    jbody body, els;  /* S_FOR, S_SETBLOCK, S_BLOCK; S_IF/S_FOR else */
    jstr *targets;    /* S_FOR, S_SET, S_SETBLOCK names; S_MACRO name then parameters */
    jexpr **defaults; /* S_MACRO: [n_targets], NULL where a parameter has no default */
    int n_targets;
    jstr attr;     /* S_SET: ns.attr */
    jexpr *filter; /* S_FOR: if */
};

typedef struct parser {
    jctx *c;
    seg_vec segs;
    int si;
    int loop_depth;
    int depth;
} parser;

static jexpr *new_expr(jctx *c, int kind, int line) {
    jexpr *e = ar_alloc(c, sizeof *e);
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->line = line;
    return e;
}

static jtok *tpeek(tstream *ts) { return &ts->v[ts->i]; }
static jtok *tnext(tstream *ts) {
    jtok *t = &ts->v[ts->i];
    if (t->t != T_END) ts->i++;
    return t;
}
static bool is_op(const jtok *t, const char *op) { return t->t == T_OP && jstr_eq(t->s, op); }
static bool is_name(const jtok *t, const char *nm) { return t->t == T_NAME && jstr_eq(t->s, nm); }

static const char *tok_desc(jctx *c, const jtok *t) {
    switch (t->t) {
    case T_END: return "end of tag";
    case T_STR: return "a string";
    case T_INT:
    case T_FLOAT: return "a number";
    default: break;
    }
    char *s = ar_alloc(c, t->s.n + 3);
    snprintf(s, t->s.n + 3, "'%.*s'", (int)t->s.n, t->s.p);
    return s;
}

static void expect_op(jctx *c, tstream *ts, const char *op) {
    jtok *t = tnext(ts);
    if (!is_op(t, op)) jfail(c, ts->line, "expected '%s' but found %s", op, tok_desc(c, t));
}

static jstr expect_name(jctx *c, tstream *ts) {
    jtok *t = tnext(ts);
    if (t->t != T_NAME) jfail(c, ts->line, "expected a name but found %s", tok_desc(c, t));
    return t->s;
}

static void expect_end(jctx *c, tstream *ts) {
    jtok *t = tpeek(ts);
    if (t->t != T_END) jfail(c, ts->line, "unexpected %s in the tag", tok_desc(c, t));
}

static jexpr *parse_expr(parser *p, tstream *ts, bool condexpr);
static jexpr *parse_or(parser *p, tstream *ts);
static jexpr *parse_unary(parser *p, tstream *ts, bool with_filter);

static void enter(parser *p, tstream *ts) {
    if (++p->depth > J_MAX_DEPTH) jfail(p->c, ts->line, "expression nested too deeply");
}

static void push_arg(jctx *c, jexpr *e, jstr name, jexpr *a, int *cap) {
    if (e->n_args == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        jarg *nv = ar_alloc(c, sizeof *nv * (size_t)*cap);
        if (e->n_args) memcpy(nv, e->args, sizeof *nv * (size_t)e->n_args);
        e->args = nv;
    }
    e->args[e->n_args++] = (jarg){name, a};
}

/* ( args ) with keyword arguments name=expr; the '(' is already consumed. */
static void parse_call_args(parser *p, tstream *ts, jexpr *e) {
    int cap = 0;
    while (!is_op(tpeek(ts), ")")) {
        if (e->n_args) expect_op(p->c, ts, ",");
        if (is_op(tpeek(ts), ")")) break;
        jstr name = {"", 0};
        if (tpeek(ts)->t == T_NAME && ts->i + 1 < ts->n && is_op(&ts->v[ts->i + 1], "=")) {
            name = tnext(ts)->s;
            tnext(ts);
        } else if (tpeek(ts)->t == T_END) {
            jfail(p->c, ts->line, "unterminated argument list");
        }
        push_arg(p->c, e, name, parse_expr(p, ts, true), &cap);
    }
    tnext(ts);
}

static jexpr *parse_primary(parser *p, tstream *ts) {
    jctx *c = p->c;
    jtok *t = tnext(ts);
    jexpr *e;
    switch (t->t) {
    case T_NAME:
        if (jstr_eq(t->s, "true") || jstr_eq(t->s, "True") || jstr_eq(t->s, "false") ||
            jstr_eq(t->s, "False")) {
            e = new_expr(c, E_LIT, ts->line);
            e->lit = v_bool(t->s.p[0] == 't' || t->s.p[0] == 'T');
        } else if (jstr_eq(t->s, "none") || jstr_eq(t->s, "None")) {
            e = new_expr(c, E_LIT, ts->line);
            e->lit = v_none();
        } else {
            e = new_expr(c, E_NAME, ts->line);
            e->name = t->s;
        }
        return e;
    case T_STR: {
        jsb b = {0};
        sb_add(c, &b, t->s.p, t->s.n);
        while (tpeek(ts)->t == T_STR) { /* adjacent literals concatenate */
            jtok *u = tnext(ts);
            sb_add(c, &b, u->s.p, u->s.n);
        }
        e = new_expr(c, E_LIT, ts->line);
        e->lit = v_str(b.p ? sb_str(&b) : (jstr){"", 0});
        return e;
    }
    case T_INT:
        e = new_expr(c, E_LIT, ts->line);
        e->lit = v_int(t->i);
        return e;
    case T_FLOAT:
        e = new_expr(c, E_LIT, ts->line);
        e->lit = v_float(t->f);
        return e;
    case T_OP:
        if (is_op(t, "(")) {
            if (is_op(tpeek(ts), ")")) {
                tnext(ts);
                e = new_expr(c, E_TUPLE, ts->line);
                return e;
            }
            jexpr *first = parse_expr(p, ts, true);
            if (!is_op(tpeek(ts), ",")) {
                expect_op(c, ts, ")");
                return first;
            }
            e = new_expr(c, E_TUPLE, ts->line);
            int cap = 0;
            push_arg(c, e, (jstr){"", 0}, first, &cap);
            while (is_op(tpeek(ts), ",")) {
                tnext(ts);
                if (is_op(tpeek(ts), ")")) break;
                push_arg(c, e, (jstr){"", 0}, parse_expr(p, ts, true), &cap);
            }
            expect_op(c, ts, ")");
            return e;
        }
        if (is_op(t, "[")) {
            e = new_expr(c, E_LIST, ts->line);
            int cap = 0;
            while (!is_op(tpeek(ts), "]")) {
                if (e->n_args) expect_op(c, ts, ",");
                if (is_op(tpeek(ts), "]")) break;
                if (tpeek(ts)->t == T_END) jfail(c, ts->line, "unterminated list literal");
                push_arg(c, e, (jstr){"", 0}, parse_expr(p, ts, true), &cap);
            }
            tnext(ts);
            return e;
        }
        if (is_op(t, "{")) {
            e = new_expr(c, E_DICT, ts->line);
            int cap = 0, vcap = 0;
            while (!is_op(tpeek(ts), "}")) {
                if (e->n_args) expect_op(c, ts, ",");
                if (is_op(tpeek(ts), "}")) break;
                if (tpeek(ts)->t == T_END) jfail(c, ts->line, "unterminated dict literal");
                jexpr *k = parse_expr(p, ts, true);
                expect_op(c, ts, ":");
                jexpr *v = parse_expr(p, ts, true);
                push_arg(c, e, (jstr){"", 0}, k, &cap);
                if (e->n_args > vcap) {
                    vcap = cap;
                    jexpr **nv = ar_alloc(c, sizeof *nv * (size_t)vcap);
                    if (e->n_args > 1) memcpy(nv, e->items, sizeof *nv * (size_t)(e->n_args - 1));
                    e->items = nv;
                }
                e->items[e->n_args - 1] = v;
            }
            tnext(ts);
            return e;
        }
        break;
    default: break;
    }
    jfail(c, ts->line, "unexpected %s in an expression", tok_desc(c, t));
}

static jexpr *parse_postfix(parser *p, tstream *ts, jexpr *e) {
    jctx *c = p->c;
    for (;;) {
        jtok *t = tpeek(ts);
        if (is_op(t, ".")) {
            tnext(ts);
            jtok *u = tnext(ts);
            if (u->t == T_NAME) {
                jexpr *a = new_expr(c, E_ATTR, ts->line);
                a->a = e;
                a->name = u->s;
                e = a;
            } else if (u->t == T_INT) {
                jexpr *a = new_expr(c, E_INDEX, ts->line);
                a->a = e;
                a->b = new_expr(c, E_LIT, ts->line);
                a->b->lit = v_int(u->i);
                e = a;
            } else {
                jfail(c, ts->line, "expected an attribute name after '.'");
            }
        } else if (is_op(t, "[")) {
            tnext(ts);
            jexpr *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (!is_op(tpeek(ts), ":") && !is_op(tpeek(ts), "]"))
                    parts[np] = parse_expr(p, ts, true);
                if (is_op(tpeek(ts), ":") && np < 2) {
                    tnext(ts);
                    slice = true;
                    np++;
                    continue;
                }
                break;
            }
            expect_op(c, ts, "]");
            jexpr *a = new_expr(c, slice ? E_SLICE : E_INDEX, ts->line);
            a->a = e;
            if (slice) {
                a->b = parts[0];
                a->c = parts[1];
                a->d = parts[2];
            } else {
                if (!parts[0]) jfail(c, ts->line, "empty subscript");
                a->b = parts[0];
            }
            e = a;
        } else if (is_op(t, "(")) {
            tnext(ts);
            jexpr *a = new_expr(c, E_CALL, ts->line);
            a->a = e;
            parse_call_args(p, ts, a);
            e = a;
        } else {
            return e;
        }
    }
}

static jexpr *parse_filters_tests(parser *p, tstream *ts, jexpr *e) {
    jctx *c = p->c;
    for (;;) {
        jtok *t = tpeek(ts);
        if (is_op(t, "|")) {
            tnext(ts);
            jexpr *f = new_expr(c, E_FILTER, ts->line);
            f->a = e;
            f->name = expect_name(c, ts);
            while (is_op(tpeek(ts), ".")) { /* dotted filter names: not supported, name them */
                tnext(ts);
                expect_name(c, ts);
                jfail(c, ts->line, "unknown filter '%.*s.'", (int)f->name.n, f->name.p);
            }
            if (is_op(tpeek(ts), "(")) {
                tnext(ts);
                parse_call_args(p, ts, f);
            }
            e = f;
        } else if (is_name(t, "is")) {
            tnext(ts);
            jexpr *f = new_expr(c, E_TEST, ts->line);
            f->a = e;
            if (is_name(tpeek(ts), "not")) {
                tnext(ts);
                f->neg = true;
            }
            jtok *nt = tnext(ts);
            if (nt->t == T_NAME)
                f->name = nt->s;
            else if (is_op(nt, "==") || is_op(nt, "!=") || is_op(nt, "<") || is_op(nt, ">") ||
                     is_op(nt, "<=") || is_op(nt, ">="))
                f->name = nt->s;
            else
                jfail(c, ts->line, "expected a test name after 'is'");
            jtok *u = tpeek(ts);
            if (is_op(u, "(")) {
                tnext(ts);
                parse_call_args(p, ts, f);
            } else if ((u->t == T_NAME || u->t == T_STR || u->t == T_INT || u->t == T_FLOAT ||
                        is_op(u, "[") || is_op(u, "{")) &&
                       !is_name(u, "else") && !is_name(u, "or") && !is_name(u, "and") &&
                       !is_name(u, "if") && !is_name(u, "in") && !is_name(u, "not")) {
                if (is_name(u, "is")) jfail(c, ts->line, "tests cannot be chained with 'is'");
                int cap = 0;
                jexpr *arg = parse_postfix(p, ts, parse_primary(p, ts));
                push_arg(c, f, (jstr){"", 0}, arg, &cap);
            }
            e = f;
        } else {
            return e;
        }
    }
}

static jexpr *parse_unary(parser *p, tstream *ts, bool with_filter) {
    enter(p, ts);
    jexpr *e;
    jtok *t = tpeek(ts);
    if (is_op(t, "-") || is_op(t, "+")) {
        tnext(ts);
        e = new_expr(p->c, t->s.p[0] == '-' ? E_NEG : E_POS, ts->line);
        e->a = parse_unary(p, ts, false);
    } else {
        e = parse_primary(p, ts);
    }
    e = parse_postfix(p, ts, e);
    if (with_filter) e = parse_filters_tests(p, ts, e);
    p->depth--;
    return e;
}

static jexpr *bin(jctx *c, char op, jexpr *a, jexpr *b, int line) {
    jexpr *e = new_expr(c, E_BIN, line);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static jexpr *parse_pow(parser *p, tstream *ts) {
    jexpr *e = parse_unary(p, ts, true);
    while (is_op(tpeek(ts), "**")) {
        tnext(ts);
        e = bin(p->c, 'P', e, parse_unary(p, ts, true), ts->line);
    }
    return e;
}

static jexpr *parse_math2(parser *p, tstream *ts) {
    jexpr *e = parse_pow(p, ts);
    for (;;) {
        jtok *t = tpeek(ts);
        char op = is_op(t, "*")    ? '*'
                  : is_op(t, "/")  ? '/'
                  : is_op(t, "//") ? 'F'
                  : is_op(t, "%")  ? '%'
                                   : 0;
        if (!op) return e;
        tnext(ts);
        e = bin(p->c, op, e, parse_pow(p, ts), ts->line);
    }
}

static jexpr *parse_concat(parser *p, tstream *ts) {
    jexpr *e = parse_math2(p, ts);
    while (is_op(tpeek(ts), "~")) {
        tnext(ts);
        e = bin(p->c, '~', e, parse_math2(p, ts), ts->line);
    }
    return e;
}

static jexpr *parse_math1(parser *p, tstream *ts) {
    jexpr *e = parse_concat(p, ts);
    for (;;) {
        jtok *t = tpeek(ts);
        char op = is_op(t, "+") ? '+' : is_op(t, "-") ? '-' : 0;
        if (!op) return e;
        tnext(ts);
        e = bin(p->c, op, e, parse_concat(p, ts), ts->line);
    }
}

static int cmp_op(tstream *ts) {
    jtok *t = tpeek(ts);
    if (is_op(t, "==")) return C_EQ;
    if (is_op(t, "!=")) return C_NE;
    if (is_op(t, "<")) return C_LT;
    if (is_op(t, ">")) return C_GT;
    if (is_op(t, "<=")) return C_LE;
    if (is_op(t, ">=")) return C_GE;
    if (is_name(t, "in")) return C_IN;
    if (is_name(t, "not") && ts->i + 1 < ts->n && is_name(&ts->v[ts->i + 1], "in")) return C_NOTIN;
    return -1;
}

static jexpr *parse_compare(parser *p, tstream *ts) {
    jctx *c = p->c;
    jexpr *first = parse_math1(p, ts);
    int op = cmp_op(ts);
    if (op < 0) return first;
    jexpr *e = new_expr(c, E_CMP, ts->line);
    int cap = 0, ocap = 0;
    push_arg(c, e, (jstr){"", 0}, first, &cap);
    while ((op = cmp_op(ts)) >= 0) {
        tnext(ts);
        if (op == C_NOTIN) tnext(ts);
        if (e->n_args > ocap) {
            ocap = cap;
            int *nv = ar_alloc(c, sizeof *nv * (size_t)ocap);
            if (e->n_args > 1) memcpy(nv, e->cmp, sizeof *nv * (size_t)(e->n_args - 1));
            e->cmp = nv;
        }
        e->cmp[e->n_args - 1] = op;
        push_arg(c, e, (jstr){"", 0}, parse_math1(p, ts), &cap);
    }
    return e;
}

static jexpr *parse_not(parser *p, tstream *ts) {
    if (is_name(tpeek(ts), "not")) {
        tnext(ts);
        enter(p, ts);
        jexpr *e = new_expr(p->c, E_NOT, ts->line);
        e->a = parse_not(p, ts);
        p->depth--;
        return e;
    }
    return parse_compare(p, ts);
}

static jexpr *parse_and(parser *p, tstream *ts) {
    jexpr *e = parse_not(p, ts);
    while (is_name(tpeek(ts), "and")) {
        tnext(ts);
        jexpr *a = new_expr(p->c, E_AND, ts->line);
        a->a = e;
        a->b = parse_not(p, ts);
        e = a;
    }
    return e;
}

static jexpr *parse_or(parser *p, tstream *ts) {
    jexpr *e = parse_and(p, ts);
    while (is_name(tpeek(ts), "or")) {
        tnext(ts);
        jexpr *a = new_expr(p->c, E_OR, ts->line);
        a->a = e;
        a->b = parse_and(p, ts);
        e = a;
    }
    return e;
}

/* condexpr: `a if cond else b` (Jinja's parse_condexpr). */
static jexpr *parse_expr(parser *p, tstream *ts, bool condexpr) {
    enter(p, ts);
    jexpr *e = parse_or(p, ts);
    while (condexpr && is_name(tpeek(ts), "if")) {
        tnext(ts);
        jexpr *ce = new_expr(p->c, E_COND, ts->line);
        ce->a = e;
        ce->b = parse_or(p, ts);
        if (is_name(tpeek(ts), "else")) {
            tnext(ts);
            ce->c = parse_expr(p, ts, true);
        }
        e = ce;
    }
    p->depth--;
    return e;
}

/* An expression, or a tuple of them when commas follow (set x = a, b). */
static jexpr *parse_tuple_expr(parser *p, tstream *ts) {
    jexpr *e = parse_expr(p, ts, true);
    if (!is_op(tpeek(ts), ",")) return e;
    jexpr *t = new_expr(p->c, E_TUPLE, ts->line);
    int cap = 0;
    push_arg(p->c, t, (jstr){"", 0}, e, &cap);
    while (is_op(tpeek(ts), ",")) {
        tnext(ts);
        if (tpeek(ts)->t == T_END) break;
        push_arg(p->c, t, (jstr){"", 0}, parse_expr(p, ts, true), &cap);
    }
    return t;
}

/* ---- statements ----------------------------------------------------------------------------- */

static jstmt *new_stmt(jctx *c, int kind, int line) {
    jstmt *s = ar_alloc(c, sizeof *s);
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->line = line;
    return s;
}

static void body_push(jctx *c, jbody *b, jstmt *s) {
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        jstmt **nv = ar_alloc(c, sizeof *nv * (size_t)cap);
        if (b->n) memcpy(nv, b->s, sizeof *nv * (size_t)b->n);
        b->s = nv;
        b->cap = cap;
    }
    b->s[b->n++] = s;
}

/* The tag that ended a body: its name and the rest of its tokens. */
typedef struct endtag {
    jstr name;
    tstream ts;
} endtag;

static void parse_body(parser *p, jbody *body, const char *const *ends, int n_ends, endtag *end,
                       const char *opener, int open_line);

static const char *const k_unsupported_tags[] = {
    "call",      "filter",   "include", "import", "from",          "extends",
    "block",     "with",     "do",      "raw",    "autoescape",    "endcall",
    "endfilter", "endblock", "endwith", "endraw", "endautoescape",
};

static jstmt *parse_tag(parser *p, tstream *ts, jstr tag) {
    jctx *c = p->c;
    int line = ts->line;
    if (jstr_eq(tag, "if")) {
        jstmt *s = new_stmt(c, S_IF, line);
        int cap = 4;
        s->conds = ar_alloc(c, sizeof *s->conds * (size_t)cap);
        s->bodies = ar_alloc(c, sizeof *s->bodies * (size_t)cap);
        jexpr *cond = parse_expr(p, ts, true);
        expect_end(c, ts);
        static const char *const ends[] = {"elif", "else", "endif"};
        for (;;) {
            if (s->n_cond == cap) {
                cap *= 2;
                jexpr **nc = ar_alloc(c, sizeof *nc * (size_t)cap);
                jbody *nb = ar_alloc(c, sizeof *nb * (size_t)cap);
                memcpy(nc, s->conds, sizeof *nc * (size_t)s->n_cond);
                memcpy(nb, s->bodies, sizeof *nb * (size_t)s->n_cond);
                s->conds = nc;
                s->bodies = nb;
            }
            endtag et;
            jbody b = {0};
            parse_body(p, &b, ends, 3, &et, "if", line);
            s->conds[s->n_cond] = cond;
            s->bodies[s->n_cond++] = b;
            if (jstr_eq(et.name, "elif")) {
                cond = parse_expr(p, &et.ts, true);
                expect_end(c, &et.ts);
                continue;
            }
            expect_end(c, &et.ts);
            if (jstr_eq(et.name, "else")) {
                static const char *const endif[] = {"endif"};
                parse_body(p, &s->els, endif, 1, &et, "if", line);
                expect_end(c, &et.ts);
            }
            return s;
        }
    }
    if (jstr_eq(tag, "for")) {
        jstmt *s = new_stmt(c, S_FOR, line);
        s->targets = ar_alloc(c, sizeof *s->targets * 8);
        bool paren = is_op(tpeek(ts), "(");
        if (paren) tnext(ts);
        for (;;) {
            if (s->n_targets == 8) jfail(c, line, "too many loop variables");
            s->targets[s->n_targets++] = expect_name(c, ts);
            if (!is_op(tpeek(ts), ",")) break;
            tnext(ts);
        }
        if (paren) expect_op(c, ts, ")");
        if (!is_name(tnext(ts), "in")) jfail(c, line, "expected 'in' in the for tag");
        s->e = parse_expr(p, ts, false);
        if (is_name(tpeek(ts), "if")) {
            tnext(ts);
            s->filter = parse_expr(p, ts, true);
        }
        if (is_name(tpeek(ts), "recursive"))
            jfail(c, line, "recursive for loops are not supported");
        expect_end(c, ts);
        static const char *const ends[] = {"else", "endfor"};
        endtag et;
        p->loop_depth++;
        parse_body(p, &s->body, ends, 2, &et, "for", line);
        p->loop_depth--;
        expect_end(c, &et.ts);
        if (jstr_eq(et.name, "else")) {
            static const char *const endfor[] = {"endfor"};
            parse_body(p, &s->els, endfor, 1, &et, "for", line);
            expect_end(c, &et.ts);
        }
        return s;
    }
    if (jstr_eq(tag, "set")) {
        jstmt *s = new_stmt(c, S_SET, line);
        s->targets = ar_alloc(c, sizeof *s->targets * 8);
        s->targets[s->n_targets++] = expect_name(c, ts);
        if (is_op(tpeek(ts), ".")) {
            tnext(ts);
            s->attr = expect_name(c, ts);
        } else {
            while (is_op(tpeek(ts), ",")) {
                tnext(ts);
                if (s->n_targets == 8) jfail(c, line, "too many assignment targets");
                s->targets[s->n_targets++] = expect_name(c, ts);
            }
        }
        if (is_op(tpeek(ts), "=")) {
            tnext(ts);
            s->e = parse_tuple_expr(p, ts);
            expect_end(c, ts);
            return s;
        }
        if (s->attr.n || s->n_targets > 1)
            jfail(c, line, "a block set ({%% set x %%}...{%% endset %%}) takes one plain name");
        if (is_op(tpeek(ts), "|")) jfail(c, line, "filters on a block set are not supported");
        expect_end(c, ts);
        s->kind = S_SETBLOCK;
        static const char *const ends[] = {"endset"};
        endtag et;
        parse_body(p, &s->body, ends, 1, &et, "set", line);
        expect_end(c, &et.ts);
        return s;
    }
    if (jstr_eq(tag, "break") || jstr_eq(tag, "continue")) {
        if (p->loop_depth == 0) jfail(c, line, "'%.*s' outside of a for loop", (int)tag.n, tag.p);
        expect_end(c, ts);
        return new_stmt(c, tag.p[0] == 'b' ? S_BREAK : S_CONTINUE, line);
    }
    if (jstr_eq(tag, "macro")) {
        jstmt *s = new_stmt(c, S_MACRO, line);
        int cap = 8;
        s->targets = ar_alloc(c, sizeof *s->targets * (size_t)cap);
        s->defaults = ar_alloc(c, sizeof *s->defaults * (size_t)cap);
        s->targets[0] = expect_name(c, ts);
        s->defaults[0] = NULL;
        s->n_targets = 1;
        expect_op(c, ts, "(");
        while (!is_op(tpeek(ts), ")")) {
            if (s->n_targets > 1) expect_op(c, ts, ",");
            if (s->n_targets == cap) jfail(c, line, "macro with too many parameters");
            s->targets[s->n_targets] = expect_name(c, ts);
            s->defaults[s->n_targets] = NULL;
            if (is_op(tpeek(ts), "=")) {
                tnext(ts);
                s->defaults[s->n_targets] = parse_expr(p, ts, true);
            }
            s->n_targets++;
        }
        tnext(ts);
        expect_end(c, ts);
        static const char *const ends[] = {"endmacro"};
        endtag et;
        int saved_loops = p->loop_depth;
        p->loop_depth = 0;
        parse_body(p, &s->body, ends, 1, &et, "macro", line);
        p->loop_depth = saved_loops;
        expect_end(c, &et.ts);
        return s;
    }
    if (jstr_eq(tag, "generation")) { /* transformers' AssistantTracker marks: no output */
        expect_end(c, ts);
        jstmt *s = new_stmt(c, S_BLOCK, line);
        static const char *const ends[] = {"endgeneration"};
        endtag et;
        parse_body(p, &s->body, ends, 1, &et, "generation", line);
        expect_end(c, &et.ts);
        return s;
    }
    for (size_t i = 0; i < sizeof k_unsupported_tags / sizeof *k_unsupported_tags; i++)
        if (jstr_eq(tag, k_unsupported_tags[i]))
            jfail(c, line, "the '%.*s' tag is not supported", (int)tag.n, tag.p);
    if (jstr_eq(tag, "elif") || jstr_eq(tag, "else") || jstr_eq(tag, "endif") ||
        jstr_eq(tag, "endfor") || jstr_eq(tag, "endset") || jstr_eq(tag, "endgeneration") ||
        jstr_eq(tag, "endmacro"))
        jfail(c, line, "unexpected '{%% %.*s %%}'", (int)tag.n, tag.p);
    jfail(c, line, "unknown tag '%.*s'", (int)tag.n, tag.p);
}

static void parse_body(parser *p, jbody *body, const char *const *ends, int n_ends, endtag *end,
                       const char *opener, int open_line) {
    jctx *c = p->c;
    if (++p->depth > J_MAX_DEPTH) jfail(c, open_line, "blocks nested too deeply");
    while (p->si < p->segs.n) {
        const seg *sg = &p->segs.v[p->si++];
        if (sg->kind == SEG_TEXT) {
            jstmt *s = new_stmt(c, S_TEXT, sg->line);
            s->text = (jstr){sg->p, sg->n};
            body_push(c, body, s);
            continue;
        }
        tstream ts;
        tokenize_expr(c, sg, &ts);
        if (sg->kind == SEG_VAR) {
            if (tpeek(&ts)->t == T_END) jfail(c, sg->line, "empty expression in '{{ }}'");
            jstmt *s = new_stmt(c, S_OUT, sg->line);
            s->e = parse_expr(p, &ts, true);
            expect_end(c, &ts);
            body_push(c, body, s);
            continue;
        }
        jtok *t = tnext(&ts);
        if (t->t != T_NAME) jfail(c, sg->line, "expected a tag name after '{%%'");
        for (int i = 0; i < n_ends; i++) {
            if (jstr_eq(t->s, ends[i])) {
                end->name = t->s;
                end->ts = ts;
                p->depth--;
                return;
            }
        }
        body_push(c, body, parse_tag(p, &ts, t->s));
    }
    if (n_ends > 0)
        jfail(c, open_line, "unexpected end of template: the '{%% %s %%}' has no '{%% %s %%}'",
              opener, ends[n_ends - 1]);
    p->depth--;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef struct jcall {
    jval *pos;
    int n_pos;
    jstr *kw;
    jval *kwv;
    int n_kw;
    const char *what; /* for messages: "filter 'x'" ... */
    int line;
} jcall;

static jval eval(jctx *c, const jexpr *e);

static jval lookup(jctx *c, jstr name) {
    for (int i = c->n_frames - 1; i >= 0; i--) {
        jval *v = dict_find(c->frames[i], name);
        if (v) return *v;
    }
    return v_undef(name);
}

static void push_frame(jctx *c) {
    if (c->n_frames == c->cap_frames) {
        int cap = c->cap_frames ? c->cap_frames * 2 : 8;
        jdict **nf = ar_alloc(c, sizeof *nf * (size_t)cap);
        if (c->n_frames) memcpy(nf, c->frames, sizeof *nf * (size_t)c->n_frames);
        c->frames = nf;
        c->cap_frames = cap;
    }
    c->frames[c->n_frames++] = dict_new(c);
}

static jcall eval_args(jctx *c, const jexpr *e, const char *what) {
    jcall a = {0};
    a.what = what;
    a.line = e->line;
    if (e->n_args) {
        a.pos = ar_alloc(c, sizeof *a.pos * (size_t)e->n_args);
        a.kw = ar_alloc(c, sizeof *a.kw * (size_t)e->n_args);
        a.kwv = ar_alloc(c, sizeof *a.kwv * (size_t)e->n_args);
    }
    for (int i = 0; i < e->n_args; i++) {
        jval v = eval(c, e->args[i].e);
        if (e->args[i].name.n) {
            a.kw[a.n_kw] = e->args[i].name;
            a.kwv[a.n_kw++] = v;
        } else {
            if (a.n_kw) jfail(c, e->line, "%s: positional argument after a keyword argument", what);
            a.pos[a.n_pos++] = v;
        }
    }
    return a;
}

/* Argument i (positional) or by keyword name, else def. */
static jval arg(const jcall *a, int i, const char *name, jval def) {
    if (i < a->n_pos) return a->pos[i];
    for (int k = 0; name && k < a->n_kw; k++)
        if (jstr_eq(a->kw[k], name)) return a->kwv[k];
    return def;
}

static void max_args(jctx *c, const jcall *a, int n) {
    if (a->n_pos > n)
        jfail(c, a->line, "%s takes at most %d arguments (%d given)", a->what, n, a->n_pos);
}

static jstr need_str(jctx *c, jval v, const jcall *a, const char *what) {
    if (v.t == JV_UNDEF) fail_undef(c, a->line, v);
    if (v.t != JV_STR)
        jfail(c, a->line, "%s: %s must be a string, not %s", a->what, what, type_name(v));
    return v.u.s;
}

static int64_t need_int(jctx *c, jval v, const jcall *a, const char *what) {
    if (v.t == JV_UNDEF) fail_undef(c, a->line, v);
    if (v.t != JV_INT && v.t != JV_BOOL)
        jfail(c, a->line, "%s: %s must be an integer, not %s", a->what, what, type_name(v));
    return num_i(v);
}

static bool py_eq(jval a, jval b, int depth) {
    if (depth > J_MAX_DEPTH) return false;
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return true;
    case JV_STR: return jstr_same(a.u.s, b.u.s);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!py_eq(a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.u.d == b.u.d) return true;
        if (a.u.d->n != b.u.d->n || a.u.d->ns || b.u.d->ns) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jval *o = dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !py_eq(a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default: return false;
    }
}

/* -1, 0, 1 for <, ==, > ; fails for unordered types. */
static int py_cmp(jctx *c, int line, jval a, jval b, int depth) {
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            return x < y ? -1 : x > y;
        }
        int64_t x = num_i(a), y = num_i(b);
        return x < y ? -1 : x > y;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, n);
        if (r) return r < 0 ? -1 : 1;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    }
    if (a.t == JV_LIST && b.t == JV_LIST && depth < J_MAX_DEPTH) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (py_eq(a.u.l->v[i], b.u.l->v[i], 0)) continue;
            return py_cmp(c, line, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    if (a.t == JV_UNDEF) fail_undef(c, line, a);
    if (b.t == JV_UNDEF) fail_undef(c, line, b);
    jfail(c, line, "values of types %s and %s cannot be ordered", type_name(a), type_name(b));
}

static bool py_in(jctx *c, int line, jval x, jval in) {
    switch (in.t) {
    case JV_UNDEF: return false;
    case JV_STR:
        if (x.t == JV_UNDEF) fail_undef(c, line, x);
        if (x.t != JV_STR)
            jfail(c, line, "'in <string>' requires a string on the left, not %s", type_name(x));
        if (x.u.s.n == 0) return true;
        return memmem(in.u.s.p, in.u.s.n, x.u.s.p, x.u.s.n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < in.u.l->n; i++)
            if (py_eq(x, in.u.l->v[i], 0)) return true;
        return false;
    case JV_DICT: return x.t == JV_STR && dict_find(in.u.d, x.u.s) != NULL;
    default: jfail(c, line, "argument of type %s is not iterable", type_name(in));
    }
}

/* Items of an iterable (list items, dict keys, string characters); undefined: none. */
static jlist *iter_items(jctx *c, int line, jval v) {
    switch (v.t) {
    case JV_UNDEF: return list_new(c, 0);
    case JV_LIST: return v.u.l;
    case JV_DICT: {
        jlist *l = list_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) list_push(c, l, v_str(v.u.d->k[i]));
        return l;
    }
    case JV_STR: {
        size_t n;
        size_t *o = cp_offsets(c, v.u.s, &n);
        jlist *l = list_new(c, n);
        for (size_t i = 0; i < n; i++)
            list_push(c, l, v_str((jstr){v.u.s.p + o[i], o[i + 1] - o[i]}));
        return l;
    }
    default: jfail(c, line, "'%s' object is not iterable", type_name(v));
    }
}

static jval get_item(jctx *c, int line, jval o, jval k) {
    if (o.t == JV_UNDEF) fail_undef(c, line, o);
    if (o.t == JV_DICT) {
        if (k.t == JV_STR) {
            jval *v = dict_find(o.u.d, k.u.s);
            if (v) return *v;
            return v_undef_msg(c, "'dict object' has no attribute '%.*s'",
                               (int)(k.u.s.n > 80 ? 80 : k.u.s.n), k.u.s.p);
        }
        return v_undef_msg(c, "'dict object' has no element of type %s", type_name(k));
    }
    if ((o.t == JV_LIST || o.t == JV_STR) && (k.t == JV_INT || k.t == JV_BOOL)) {
        int64_t i = num_i(k);
        if (o.t == JV_LIST) {
            int64_t n = (int64_t)o.u.l->n;
            if (i < 0) i += n;
            if (i < 0 || i >= n)
                return v_undef_msg(c, "list object has no element %lld", (long long)num_i(k));
            return o.u.l->v[i];
        }
        size_t n;
        size_t *off = cp_offsets(c, o.u.s, &n);
        if (i < 0) i += (int64_t)n;
        if (i < 0 || i >= (int64_t)n)
            return v_undef_msg(c, "str object has no element %lld", (long long)num_i(k));
        return v_str((jstr){o.u.s.p + off[i], off[i + 1] - off[i]});
    }
    return v_undef_msg(c, "%s object has no element of type %s", type_name(o), type_name(k));
}

static jval get_attr(jctx *c, int line, jval o, jstr name) {
    if (o.t == JV_UNDEF) fail_undef(c, line, o);
    int nn = (int)(name.n > 80 ? 80 : name.n);
    if (o.t == JV_DICT) {
        jval *v = dict_find(o.u.d, name);
        if (v) return *v;
        return v_undef_msg(c, "'%s object' has no attribute '%.*s'",
                           o.u.d->ns ? "Namespace" : "dict", nn, name.p);
    }
    return v_undef_msg(c, "'%s object' has no attribute '%.*s'", type_name(o), nn, name.p);
}

/* Python's slice index adjustment for a sequence of n items. */
static int64_t slice_clamp(int64_t i, int64_t n, int64_t step) {
    if (i < 0) {
        i += n;
        if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
        i = step < 0 ? n - 1 : n;
    }
    return i;
}

static jval do_slice(jctx *c, int line, jval o, jval a, jval b, jval st) {
    if (o.t == JV_UNDEF) fail_undef(c, line, o);
    int64_t step = st.t == JV_NONE || st.t == JV_UNDEF ? 1 : (st.t == JV_INT ? st.u.i : 0);
    if (step == 0) jfail(c, line, "slice step must be a non-zero integer");
    size_t n = 0;
    size_t *off = NULL;
    if (o.t == JV_LIST)
        n = o.u.l->n;
    else if (o.t == JV_STR)
        off = cp_offsets(c, o.u.s, &n);
    else
        jfail(c, line, "'%s' object cannot be sliced", type_name(o));
    int64_t N = (int64_t)n;
    int64_t start, stop;
    if (a.t == JV_NONE || a.t == JV_UNDEF)
        start = step < 0 ? N - 1 : 0;
    else if (a.t == JV_INT)
        start = slice_clamp(a.u.i, N, step);
    else
        jfail(c, line, "slice indices must be integers");
    if (b.t == JV_NONE || b.t == JV_UNDEF)
        stop = step < 0 ? -1 : N;
    else if (b.t == JV_INT)
        stop = slice_clamp(b.u.i, N, step);
    else
        jfail(c, line, "slice indices must be integers");
    if (o.t == JV_LIST) {
        jlist *l = list_new(c, 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            list_push(c, l, o.u.l->v[i]);
        return v_list(l);
    }
    jsb sb = {0};
    sb_add(c, &sb, "", 0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        sb_add(c, &sb, o.u.s.p + off[i], off[i + 1] - off[i]);
    return v_str(sb.p ? sb_str(&sb) : (jstr){"", 0});
}

static jval arith(jctx *c, int line, char op, jval a, jval b) {
    if (op == '~') {
        jsb sb = {0};
        sb_add(c, &sb, "", 0);
        fmt_str(c, &sb, a, 0);
        fmt_str(c, &sb, b, 0);
        return v_str(sb_str(&sb));
    }
    if (a.t == JV_UNDEF) fail_undef(c, line, a);
    if (b.t == JV_UNDEF) fail_undef(c, line, b);
    if (op == '+' && a.t == JV_STR && b.t == JV_STR) {
        jsb sb = {0};
        sb_add(c, &sb, "", 0);
        sb_add(c, &sb, a.u.s.p, a.u.s.n);
        sb_add(c, &sb, b.u.s.p, b.u.s.n);
        return v_str(sb_str(&sb));
    }
    if (op == '+' && a.t == JV_LIST && b.t == JV_LIST) {
        jlist *l = list_new(c, a.u.l->n + b.u.l->n);
        for (size_t i = 0; i < a.u.l->n; i++) list_push(c, l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++) list_push(c, l, b.u.l->v[i]);
        l->tuple = a.u.l->tuple;
        return v_list(l);
    }
    if (op == '*' && ((a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))) {
        int64_t k = num_i(b);
        size_t unit = a.t == JV_STR ? a.u.s.n : a.u.l->n;
        if (k > 0 && unit > 0 && (uint64_t)k > J_MAX_ITEMS / unit)
            jfail(c, line, "repetition result is too large");
        if (a.t == JV_STR) {
            jsb sb = {0};
            sb_add(c, &sb, "", 0);
            for (int64_t i = 0; i < k; i++) sb_add(c, &sb, a.u.s.p, a.u.s.n);
            return v_str(sb_str(&sb));
        }
        jlist *l = list_new(c, 0);
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < a.u.l->n; j++) list_push(c, l, a.u.l->v[j]);
        return v_list(l);
    }
    if (!is_num(a) || !is_num(b)) {
        const char *ops = op == 'F' ? "//" : op == 'P' ? "**" : (char[]){op, 0};
        jfail(c, line, "unsupported operand types for %s: '%s' and '%s'", ops, type_name(a),
              type_name(b));
    }
    bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
    if (op == '/') {
        if (num_f(b) == 0.0) jfail(c, line, "division by zero");
        return v_float(num_f(a) / num_f(b));
    }
    if (fl || (op == 'P' && num_i(b) < 0)) {
        double x = num_f(a), y = num_f(b);
        switch (op) {
        case '+': return v_float(x + y);
        case '-': return v_float(x - y);
        case '*': return v_float(x * y);
        case 'P': return v_float(pow(x, y));
        case 'F':
        case '%': {
            if (y == 0.0) jfail(c, line, "division by zero");
            double m = fmod(x, y);
            if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
            return v_float(op == '%' ? m : floor((x - m) / y + 0.5));
        }
        default: break;
        }
    } else {
        int64_t x = num_i(a), y = num_i(b), r = 0;
        bool ovf = false;
        switch (op) {
        case '+': ovf = __builtin_add_overflow(x, y, &r); break;
        case '-': ovf = __builtin_sub_overflow(x, y, &r); break;
        case '*': ovf = __builtin_mul_overflow(x, y, &r); break;
        case 'F':
        case '%': {
            if (y == 0) jfail(c, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                ovf = true;
                break;
            }
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                m += y;
                q -= 1;
            }
            r = op == '%' ? m : q;
            break;
        }
        case 'P': {
            r = 1;
            for (int64_t i = 0; i < y && !ovf; i++) ovf = __builtin_mul_overflow(r, x, &r);
            break;
        }
        default: break;
        }
        if (ovf) jfail(c, line, "integer overflow");
        return v_int(r);
    }
    jfail(c, line, "unsupported operator");
}

/* ---- tests ---------------------------------------------------------------------------------- */

static bool apply_test(jctx *c, int line, jstr name, jval v, const jcall *a) {
#define TEST(s) jstr_eq(name, s)
    if (TEST("defined")) return v.t != JV_UNDEF;
    if (TEST("undefined")) return v.t == JV_UNDEF;
    if (TEST("none")) return v.t == JV_NONE;
    if (TEST("boolean")) return v.t == JV_BOOL;
    if (TEST("false")) return v.t == JV_BOOL && !v.u.b;
    if (TEST("true")) return v.t == JV_BOOL && v.u.b;
    if (TEST("integer")) return v.t == JV_INT;
    if (TEST("float")) return v.t == JV_FLOAT;
    if (TEST("number")) return is_num(v);
    if (TEST("string")) return v.t == JV_STR;
    if (TEST("mapping")) return v.t == JV_DICT;
    if (TEST("sequence")) return v.t == JV_LIST || v.t == JV_STR || v.t == JV_DICT;
    if (TEST("iterable"))
        return v.t == JV_LIST || v.t == JV_STR || v.t == JV_DICT || v.t == JV_UNDEF;
    if (TEST("callable")) return false;
    if (TEST("lower") || TEST("upper")) {
        jstr s = to_str(c, v);
        bool lower = TEST("lower"), any = false;
        for (size_t i = 0; i < s.n; i++) {
            char ch = s.p[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) any = true;
            if (lower ? (ch >= 'A' && ch <= 'Z') : (ch >= 'a' && ch <= 'z')) return false;
        }
        return any;
    }
    if (TEST("odd") || TEST("even")) {
        int64_t i = need_int(c, v, a, "the value");
        return (i % 2 != 0) == TEST("odd");
    }
    if (TEST("divisibleby")) {
        int64_t i = need_int(c, v, a, "the value"),
                d = need_int(c, arg(a, 0, "num", v_none()), a, "num");
        if (d == 0) jfail(c, line, "divisibleby 0");
        return i % d == 0;
    }
    jval o = arg(a, 0, NULL, v_undef((jstr){"", 0}));
    if (TEST("eq") || TEST("equalto") || TEST("==")) return py_eq(v, o, 0);
    if (TEST("ne") || TEST("!=")) return !py_eq(v, o, 0);
    if (TEST("lt") || TEST("lessthan") || TEST("<")) return py_cmp(c, line, v, o, 0) < 0;
    if (TEST("le") || TEST("<=")) return py_cmp(c, line, v, o, 0) <= 0;
    if (TEST("gt") || TEST("greaterthan") || TEST(">")) return py_cmp(c, line, v, o, 0) > 0;
    if (TEST("ge") || TEST(">=")) return py_cmp(c, line, v, o, 0) >= 0;
    if (TEST("in")) return py_in(c, line, v, o);
    if (TEST("sameas")) return v.t == o.t && (v.t == JV_NONE || v.t == JV_UNDEF || py_eq(v, o, 0));
#undef TEST
    jfail(c, line, "unknown test '%.*s'", (int)name.n, name.p);
}

/* ---- filters -------------------------------------------------------------------------------- */

static jval select_items(jctx *c, int line, jval v, const jcall *a, bool by_attr, bool keep) {
    jlist *in = iter_items(c, line, v);
    jlist *out = list_new(c, in->n);
    int k = 0;
    jstr attr = {"", 0};
    if (by_attr) attr = need_str(c, arg(a, k++, NULL, v_undef((jstr){"", 0})), a, "the attribute");
    jval tv = arg(a, k++, NULL, v_none());
    jcall targs = {0};
    targs.what = a->what;
    targs.line = line;
    if (a->n_pos > k) {
        targs.pos = a->pos + k;
        targs.n_pos = a->n_pos - k;
    }
    for (size_t i = 0; i < in->n; i++) {
        jval x = by_attr ? get_attr(c, line, in->v[i], attr) : in->v[i];
        bool r = tv.t == JV_NONE ? truthy(x)
                                 : apply_test(c, line, need_str(c, tv, a, "the test"), x, &targs);
        if (r == keep) list_push(c, out, in->v[i]);
    }
    return v_list(out);
}

static jval apply_filter(jctx *c, const jexpr *e, jval v, const jcall *a) {
    int line = e->line;
    jstr name = e->name;
#define FILTER(s) jstr_eq(name, s)
    if (FILTER("trim") || FILTER("strip")) {
        max_args(c, a, 1);
        jval ch = arg(a, 0, "chars", v_none());
        jstr chars = ch.t == JV_NONE ? (jstr){"", 0} : need_str(c, ch, a, "chars");
        return v_str(py_strip(to_str(c, v), ch.t == JV_NONE ? NULL : &chars, true, true));
    }
    if (FILTER("length") || FILTER("count")) {
        switch (v.t) {
        case JV_UNDEF: return v_int(0);
        case JV_STR: return v_int((int64_t)cp_count(v.u.s));
        case JV_LIST: return v_int((int64_t)v.u.l->n);
        case JV_DICT: return v_int((int64_t)v.u.d->n);
        default: jfail(c, line, "object of type '%s' has no len()", type_name(v));
        }
    }
    if (FILTER("upper")) return v_str(ascii_case(c, to_str(c, v), 1));
    if (FILTER("lower")) return v_str(ascii_case(c, to_str(c, v), 0));
    if (FILTER("capitalize")) return v_str(ascii_case(c, to_str(c, v), 2));
    if (FILTER("title")) return v_str(ascii_case(c, to_str(c, v), 3));
    if (FILTER("default") || FILTER("d")) {
        max_args(c, a, 2);
        jval def = arg(a, 0, "default_value", v_cstr(""));
        bool boolean = truthy(arg(a, 1, "boolean", v_bool(false)));
        if (v.t == JV_UNDEF || (boolean && !truthy(v))) return def;
        return v;
    }
    if (FILTER("first") || FILTER("last")) {
        jlist *l = iter_items(c, line, v);
        if (!l->n) return v_undef((jstr){"", 0});
        return FILTER("first") ? l->v[0] : l->v[l->n - 1];
    }
    if (FILTER("join")) {
        max_args(c, a, 2);
        jval sep = arg(a, 0, "d", v_cstr(""));
        jval attr = arg(a, 1, "attribute", v_none());
        jstr s = need_str(c, sep, a, "the separator");
        jlist *l = iter_items(c, line, v);
        jsb sb = {0};
        sb_add(c, &sb, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (i) sb_add(c, &sb, s.p, s.n);
            jval x = l->v[i];
            if (attr.t == JV_STR) x = get_attr(c, line, x, attr.u.s);
            fmt_str(c, &sb, x, 0);
        }
        return v_str(sb_str(&sb));
    }
    if (FILTER("replace")) {
        max_args(c, a, 3);
        jstr s = to_str(c, v);
        jstr old = need_str(c, arg(a, 0, "old", v_undef((jstr){"old", 3})), a, "old");
        jstr nw = need_str(c, arg(a, 1, "new", v_undef((jstr){"new", 3})), a, "new");
        jval cnt = arg(a, 2, "count", v_none());
        int64_t max = cnt.t == JV_NONE ? INT64_MAX : need_int(c, cnt, a, "count");
        jsb sb = {0};
        sb_add(c, &sb, "", 0);
        size_t i = 0;
        int64_t done = 0;
        if (old.n == 0) { /* Python inserts new between characters */
            uint32_t cp;
            if (done < max) {
                sb_add(c, &sb, nw.p, nw.n);
                done++;
            }
            while (i < s.n) {
                int L = cp_at(s.p + i, s.n - i, &cp);
                sb_add(c, &sb, s.p + i, (size_t)L);
                i += (size_t)L;
                if (done < max) {
                    sb_add(c, &sb, nw.p, nw.n);
                    done++;
                }
            }
            return v_str(sb_str(&sb));
        }
        while (i < s.n) {
            const char *hit = done < max ? memmem(s.p + i, s.n - i, old.p, old.n) : NULL;
            if (!hit) {
                sb_add(c, &sb, s.p + i, s.n - i);
                break;
            }
            sb_add(c, &sb, s.p + i, (size_t)(hit - (s.p + i)));
            sb_add(c, &sb, nw.p, nw.n);
            i = (size_t)(hit - s.p) + old.n;
            done++;
        }
        return v_str(sb_str(&sb));
    }
    if (FILTER("string")) return v_str(to_str(c, v));
    if (FILTER("safe")) return v_str(to_str(c, v));
    if (FILTER("int")) {
        jval def = arg(a, 0, "default", v_int(0));
        if (v.t == JV_INT) return v;
        if (v.t == JV_BOOL) return v_int(v.u.b);
        if (v.t == JV_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18)
            return v_int((int64_t)v.u.f);
        if (v.t == JV_STR) {
            char tmp[64];
            jstr s = py_strip(v.u.s, NULL, true, true);
            if (s.n > 0 && s.n < sizeof tmp) {
                memcpy(tmp, s.p, s.n);
                tmp[s.n] = 0;
                char *end;
                long long x = strtoll(tmp, &end, 10);
                if (*end == 0) return v_int(x);
                double f = strtod(tmp, &end);
                if (*end == 0 && isfinite(f) && fabs(f) < 9.2e18) return v_int((int64_t)f);
            }
        }
        return def;
    }
    if (FILTER("float")) {
        jval def = arg(a, 0, "default", v_float(0.0));
        if (is_num(v)) return v_float(num_f(v));
        if (v.t == JV_STR) {
            char tmp[64];
            jstr s = py_strip(v.u.s, NULL, true, true);
            if (s.n > 0 && s.n < sizeof tmp) {
                memcpy(tmp, s.p, s.n);
                tmp[s.n] = 0;
                char *end;
                double f = strtod(tmp, &end);
                if (*end == 0) return v_float(f);
            }
        }
        return def;
    }
    if (FILTER("abs")) {
        if (v.t == JV_FLOAT) return v_float(fabs(v.u.f));
        if (v.t == JV_INT && v.u.i != INT64_MIN) return v_int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.t == JV_BOOL) return v_int(v.u.b);
        jfail(c, line, "bad operand type for abs(): '%s'", type_name(v));
    }
    if (FILTER("list")) {
        jlist *l = iter_items(c, line, v);
        jlist *o = list_new(c, l->n);
        for (size_t i = 0; i < l->n; i++) list_push(c, o, l->v[i]);
        return v_list(o);
    }
    if (FILTER("reverse")) {
        if (v.t == JV_STR) {
            size_t n;
            size_t *off = cp_offsets(c, v.u.s, &n);
            jsb sb = {0};
            sb_add(c, &sb, "", 0);
            for (size_t i = n; i-- > 0;) sb_add(c, &sb, v.u.s.p + off[i], off[i + 1] - off[i]);
            return v_str(sb_str(&sb));
        }
        jlist *l = iter_items(c, line, v);
        jlist *o = list_new(c, l->n);
        for (size_t i = l->n; i-- > 0;) list_push(c, o, l->v[i]);
        return v_list(o);
    }
    if (FILTER("items")) {
        if (v.t == JV_UNDEF) return v_list(list_new(c, 0));
        if (v.t != JV_DICT) jfail(c, line, "filter 'items': %s is not a mapping", type_name(v));
        jlist *o = list_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) {
            jlist *p = list_new(c, 2);
            p->tuple = true;
            list_push(c, p, v_str(v.u.d->k[i]));
            list_push(c, p, v.u.d->v[i]);
            list_push(c, o, v_list(p));
        }
        return v_list(o);
    }
    if (FILTER("tojson")) {
        jval ind = arg(a, 1, "indent", arg(a, 0, NULL, v_none()));
        if (a->n_pos >= 1 && a->pos[0].t == JV_BOOL) ind = arg(a, 1, "indent", v_none());
        int indent = ind.t == JV_NONE ? -1 : (int)need_int(c, ind, a, "indent");
        if (indent > 64) indent = 64;
        jsb sb = {0};
        sb_add(c, &sb, "", 0);
        fmt_json(c, &sb, v, indent < 0 ? -1 : indent, 0, line);
        return v_str(sb_str(&sb));
    }
    if (FILTER("map")) {
        jval attr = arg(a, 99, "attribute", v_none());
        jlist *l = iter_items(c, line, v);
        jlist *o = list_new(c, l->n);
        if (attr.t == JV_STR) {
            jval def = arg(a, 99, "default", v_undef((jstr){"", 0}));
            for (size_t i = 0; i < l->n; i++) {
                jval x = get_attr(c, line, l->v[i], attr.u.s);
                list_push(c, o, x.t == JV_UNDEF && def.t != JV_UNDEF ? def : x);
            }
            return v_list(o);
        }
        jstr fname = need_str(c, arg(a, 0, NULL, v_undef((jstr){"", 0})), a, "the filter name");
        jexpr fe = *e;
        fe.name = fname;
        jcall fa = *a;
        fa.pos = a->pos + 1;
        fa.n_pos = a->n_pos - 1;
        for (size_t i = 0; i < l->n; i++) list_push(c, o, apply_filter(c, &fe, l->v[i], &fa));
        return v_list(o);
    }
    if (FILTER("select")) return select_items(c, line, v, a, false, true);
    if (FILTER("reject")) return select_items(c, line, v, a, false, false);
    if (FILTER("selectattr")) return select_items(c, line, v, a, true, true);
    if (FILTER("rejectattr")) return select_items(c, line, v, a, true, false);
#undef FILTER
    jfail(c, line, "unknown filter '%.*s'", (int)name.n, name.p);
}

/* ---- methods and functions ------------------------------------------------------------------ */

static bool str_affix(jctx *c, jstr s, jval x, const jcall *a, bool start) {
    if (x.t == JV_LIST) {
        for (size_t i = 0; i < x.u.l->n; i++)
            if (str_affix(c, s, x.u.l->v[i], a, start)) return true;
        return false;
    }
    jstr p = need_str(c, x, a, "the prefix");
    if (p.n > s.n) return false;
    return memcmp(start ? s.p : s.p + s.n - p.n, p.p, p.n) == 0;
}

static jval call_method(jctx *c, int line, jval o, jstr m, const jcall *a) {
    if (o.t == JV_UNDEF) fail_undef(c, line, o);
#define M(s) jstr_eq(m, s)
    if (o.t == JV_STR) {
        jstr s = o.u.s;
        if (M("strip") || M("lstrip") || M("rstrip")) {
            max_args(c, a, 1);
            jval ch = arg(a, 0, NULL, v_none());
            jstr chars = ch.t == JV_NONE ? (jstr){"", 0} : need_str(c, ch, a, "chars");
            return v_str(py_strip(s, ch.t == JV_NONE ? NULL : &chars, !M("rstrip"), !M("lstrip")));
        }
        if (M("startswith") || M("endswith")) {
            max_args(c, a, 1);
            return v_bool(
                str_affix(c, s, arg(a, 0, NULL, v_undef((jstr){"prefix", 6})), a, M("startswith")));
        }
        if (M("upper")) return v_str(ascii_case(c, s, 1));
        if (M("lower")) return v_str(ascii_case(c, s, 0));
        if (M("capitalize")) return v_str(ascii_case(c, s, 2));
        if (M("title")) return v_str(ascii_case(c, s, 3));
        if (M("replace")) {
            jexpr fe = {0};
            fe.line = line;
            fe.name = (jstr){"replace", 7};
            return apply_filter(c, &fe, o, a);
        }
        if (M("find") || M("count")) {
            jstr x = need_str(c, arg(a, 0, NULL, v_undef((jstr){"sub", 3})), a, "the substring");
            if (M("find")) {
                const char *hit = x.n ? memmem(s.p, s.n, x.p, x.n) : s.p;
                if (!hit) return v_int(-1);
                return v_int((int64_t)cp_count((jstr){s.p, (size_t)(hit - s.p)}));
            }
            if (x.n == 0) return v_int((int64_t)cp_count(s) + 1);
            int64_t k = 0;
            for (const char *q = s.p; (q = memmem(q, s.n - (size_t)(q - s.p), x.p, x.n)); q += x.n)
                k++;
            return v_int(k);
        }
        if (M("split")) {
            jval sepv = arg(a, 0, "sep", v_none());
            int64_t maxs = need_int(c, arg(a, 1, "maxsplit", v_int(-1)), a, "maxsplit");
            jlist *l = list_new(c, 4);
            if (sepv.t == JV_NONE) {
                size_t i = 0;
                uint32_t cp;
                int64_t done = 0;
                for (;;) {
                    while (i < s.n) {
                        int L = cp_at(s.p + i, s.n - i, &cp);
                        if (!py_space(cp)) break;
                        i += (size_t)L;
                    }
                    if (i >= s.n) break;
                    if (maxs >= 0 && done >= maxs) {
                        list_push(c, l,
                                  v_str(py_strip((jstr){s.p + i, s.n - i}, NULL, false, true)));
                        break;
                    }
                    size_t st = i;
                    while (i < s.n) {
                        int L = cp_at(s.p + i, s.n - i, &cp);
                        if (py_space(cp)) break;
                        i += (size_t)L;
                    }
                    list_push(c, l, v_str((jstr){s.p + st, i - st}));
                    done++;
                }
                return v_list(l);
            }
            jstr sep = need_str(c, sepv, a, "sep");
            if (sep.n == 0) jfail(c, line, "split: empty separator");
            size_t i = 0;
            int64_t done = 0;
            for (;;) {
                const char *hit =
                    (maxs < 0 || done < maxs) ? memmem(s.p + i, s.n - i, sep.p, sep.n) : NULL;
                if (!hit) {
                    list_push(c, l, v_str((jstr){s.p + i, s.n - i}));
                    break;
                }
                list_push(c, l, v_str((jstr){s.p + i, (size_t)(hit - (s.p + i))}));
                i = (size_t)(hit - s.p) + sep.n;
                done++;
            }
            return v_list(l);
        }
        if (M("join")) {
            jexpr fe = {0};
            fe.line = line;
            fe.name = (jstr){"join", 4};
            jcall fa = {0};
            jval sepv = o;
            fa.pos = &sepv;
            fa.n_pos = 1;
            fa.what = a->what;
            fa.line = line;
            return apply_filter(c, &fe, arg(a, 0, NULL, v_undef((jstr){"iterable", 8})), &fa);
        }
        if (M("format")) jfail(c, line, "str.format() is not supported");
    } else if (o.t == JV_DICT) {
        jdict *d = o.u.d;
        if (M("items") || M("keys") || M("values")) {
            max_args(c, a, 0);
            jlist *l = list_new(c, d->n);
            for (size_t i = 0; i < d->n; i++) {
                if (M("keys")) {
                    list_push(c, l, v_str(d->k[i]));
                } else if (M("values")) {
                    list_push(c, l, d->v[i]);
                } else {
                    jlist *p = list_new(c, 2);
                    p->tuple = true;
                    list_push(c, p, v_str(d->k[i]));
                    list_push(c, p, d->v[i]);
                    list_push(c, l, v_list(p));
                }
            }
            return v_list(l);
        }
        if (M("get")) {
            max_args(c, a, 2);
            jval k = arg(a, 0, NULL, v_undef((jstr){"key", 3}));
            jval *x = k.t == JV_STR ? dict_find(d, k.u.s) : NULL;
            return x ? *x : arg(a, 1, NULL, v_none());
        }
    }
#undef M
    jfail(c, line, "unknown method '%.*s' of a %s value", (int)m.n, m.p, type_name(o));
}

static jval call_function(jctx *c, int line, jstr fn, const jcall *a) {
#define F(s) jstr_eq(fn, s)
    if (F("raise_exception")) {
        jval m = arg(a, 0, NULL, v_cstr(""));
        jstr s = to_str(c, m);
        jfail(c, line, "raise_exception: %.*s", (int)(s.n > 600 ? 600 : s.n), s.p);
    }
    if (F("range")) {
        int64_t start = 0, stop, step = 1;
        if (a->n_pos == 1) {
            stop = need_int(c, a->pos[0], a, "stop");
        } else if (a->n_pos == 2 || a->n_pos == 3) {
            start = need_int(c, a->pos[0], a, "start");
            stop = need_int(c, a->pos[1], a, "stop");
            if (a->n_pos == 3) step = need_int(c, a->pos[2], a, "step");
        } else {
            jfail(c, line, "range() takes 1 to 3 arguments");
        }
        if (step == 0) jfail(c, line, "range() step must not be zero");
        jlist *l = list_new(c, 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (l->n >= J_MAX_ITEMS) jfail(c, line, "range() is too long");
            list_push(c, l, v_int(i));
            if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
        }
        return v_list(l);
    }
    if (F("namespace") || F("dict")) {
        jdict *d = dict_new(c);
        d->ns = F("namespace");
        if (a->n_pos > 1 || (a->n_pos == 1 && a->pos[0].t != JV_DICT))
            jfail(c, line, "%.*s() takes keyword arguments (or one dict)", (int)fn.n, fn.p);
        if (a->n_pos == 1)
            for (size_t i = 0; i < a->pos[0].u.d->n; i++)
                dict_set(c, d, a->pos[0].u.d->k[i], a->pos[0].u.d->v[i]);
        for (int i = 0; i < a->n_kw; i++) dict_set(c, d, a->kw[i], a->kwv[i]);
        return v_dict(d);
    }
    if (F("strftime_now")) {
        jstr f = need_str(c, arg(a, 0, NULL, v_undef((jstr){"format", 6})), a, "the format");
        char fmt[256], buf[512];
        if (f.n >= sizeof fmt) jfail(c, line, "strftime_now: format too long");
        memcpy(fmt, f.p, f.n);
        fmt[f.n] = 0;
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        size_t n = strftime(buf, sizeof buf, fmt, &tmv);
        return v_str(jstr_dup(c, buf, n));
    }
#undef F
    jfail(c, line, "unknown function '%.*s'", (int)fn.n, fn.p);
}

static void exec_body(jctx *c, const jbody *b);

/* Renders a macro's body with its parameters bound (positional, then by keyword, then the
 * defaults); returns the text. */
static jval call_macro(jctx *c, int line, const jstmt *m, const jcall *a) {
    int np = m->n_targets - 1;
    if (a->n_pos > np)
        jfail(c, line, "macro '%.*s' takes %d arguments (%d given)", (int)m->targets[0].n,
              m->targets[0].p, np, a->n_pos);
    push_frame(c);
    jdict *f = c->frames[c->n_frames - 1];
    for (int i = 0; i < np; i++) {
        jstr pn = m->targets[i + 1];
        jval v = arg(a, i, NULL, v_undef(pn));
        for (int k = 0; k < a->n_kw && i >= a->n_pos; k++)
            if (jstr_same(a->kw[k], pn)) v = a->kwv[k];
        if (v.t == JV_UNDEF && m->defaults[i + 1]) v = eval(c, m->defaults[i + 1]);
        dict_set(c, f, pn, v);
    }
    for (int k = 0; k < a->n_kw; k++) {
        bool known = false;
        for (int i = 0; i < np; i++) known |= jstr_same(a->kw[k], m->targets[i + 1]);
        if (!known)
            jfail(c, line, "macro '%.*s' has no parameter '%.*s'", (int)m->targets[0].n,
                  m->targets[0].p, (int)a->kw[k].n, a->kw[k].p);
    }
    jsb *saved = c->out;
    jsb cap = {0};
    sb_add(c, &cap, "", 0);
    c->out = &cap;
    exec_body(c, &m->body);
    c->out = saved;
    c->n_frames--;
    return v_str(sb_str(&cap));
}

static jval eval(jctx *c, const jexpr *e) {
    if (++c->depth > J_MAX_DEPTH) jfail(c, e->line, "expression nested too deeply");
    jval r;
    switch (e->kind) {
    case E_LIT: r = e->lit; break;
    case E_NAME: r = lookup(c, e->name); break;
    case E_ATTR: r = get_attr(c, e->line, eval(c, e->a), e->name); break;
    case E_INDEX: {
        jval o = eval(c, e->a);
        r = get_item(c, e->line, o, eval(c, e->b));
        break;
    }
    case E_SLICE: {
        jval o = eval(c, e->a);
        jval a = e->b ? eval(c, e->b) : v_none();
        jval b = e->c ? eval(c, e->c) : v_none();
        jval s = e->d ? eval(c, e->d) : v_none();
        r = do_slice(c, e->line, o, a, b, s);
        break;
    }
    case E_CALL: {
        const jexpr *f = e->a;
        if (f->kind == E_NAME) {
            jval var = lookup(c, f->name);
            if (var.t == JV_MACRO) {
                jcall a = eval_args(c, e, "macro");
                r = call_macro(c, e->line, var.u.m, &a);
                break;
            }
            if (var.t != JV_UNDEF)
                jfail(c, e->line, "'%.*s' is a %s, not a function", (int)f->name.n, f->name.p,
                      type_name(var));
            char what[80];
            snprintf(what, sizeof what, "%.*s()", (int)(f->name.n > 40 ? 40 : f->name.n),
                     f->name.p);
            jcall a = eval_args(c, e, what);
            r = call_function(c, e->line, f->name, &a);
        } else if (f->kind == E_ATTR) {
            jval o = eval(c, f->a);
            char what[80];
            snprintf(what, sizeof what, "method %.*s()", (int)(f->name.n > 40 ? 40 : f->name.n),
                     f->name.p);
            jcall a = eval_args(c, e, what);
            r = call_method(c, e->line, o, f->name, &a);
        } else {
            jfail(c, e->line, "this expression cannot be called");
        }
        break;
    }
    case E_FILTER: {
        jval v = eval(c, e->a);
        char what[80];
        snprintf(what, sizeof what, "filter '%.*s'", (int)(e->name.n > 40 ? 40 : e->name.n),
                 e->name.p);
        jcall a = eval_args(c, e, what);
        r = apply_filter(c, e, v, &a);
        break;
    }
    case E_TEST: {
        jval v = eval(c, e->a);
        char what[80];
        snprintf(what, sizeof what, "test '%.*s'", (int)(e->name.n > 40 ? 40 : e->name.n),
                 e->name.p);
        jcall a = eval_args(c, e, what);
        r = v_bool(apply_test(c, e->line, e->name, v, &a) != e->neg);
        break;
    }
    case E_NOT: r = v_bool(!truthy(eval(c, e->a))); break;
    case E_NEG:
    case E_POS: {
        jval v = eval(c, e->a);
        if (v.t == JV_UNDEF) fail_undef(c, e->line, v);
        if (!is_num(v))
            jfail(c, e->line, "bad operand type for unary %c: '%s'", e->kind == E_NEG ? '-' : '+',
                  type_name(v));
        if (e->kind == E_POS)
            r = v.t == JV_BOOL ? v_int(v.u.b) : v;
        else if (v.t == JV_FLOAT)
            r = v_float(-v.u.f);
        else if (num_i(v) == INT64_MIN)
            jfail(c, e->line, "integer overflow");
        else
            r = v_int(-num_i(v));
        break;
    }
    case E_BIN: {
        jval a = eval(c, e->a);
        r = arith(c, e->line, e->op, a, eval(c, e->b));
        break;
    }
    case E_AND: {
        jval a = eval(c, e->a);
        r = truthy(a) ? eval(c, e->b) : a;
        break;
    }
    case E_OR: {
        jval a = eval(c, e->a);
        r = truthy(a) ? a : eval(c, e->b);
        break;
    }
    case E_CMP: {
        jval a = eval(c, e->args[0].e);
        r = v_bool(true);
        for (int i = 1; i < e->n_args; i++) {
            jval b = eval(c, e->args[i].e);
            bool ok;
            switch (e->cmp[i - 1]) {
            case C_EQ: ok = py_eq(a, b, 0); break;
            case C_NE: ok = !py_eq(a, b, 0); break;
            case C_LT: ok = py_cmp(c, e->line, a, b, 0) < 0; break;
            case C_GT: ok = py_cmp(c, e->line, a, b, 0) > 0; break;
            case C_LE: ok = py_cmp(c, e->line, a, b, 0) <= 0; break;
            case C_GE: ok = py_cmp(c, e->line, a, b, 0) >= 0; break;
            case C_IN: ok = py_in(c, e->line, a, b); break;
            default: ok = !py_in(c, e->line, a, b); break;
            }
            if (!ok) {
                r = v_bool(false);
                break;
            }
            a = b;
        }
        break;
    }
    case E_COND:
        if (truthy(eval(c, e->b)))
            r = eval(c, e->a);
        else
            r = e->c ? eval(c, e->c) : v_undef((jstr){"", 0});
        break;
    case E_LIST:
    case E_TUPLE: {
        jlist *l = list_new(c, (size_t)e->n_args);
        l->tuple = e->kind == E_TUPLE;
        for (int i = 0; i < e->n_args; i++) list_push(c, l, eval(c, e->args[i].e));
        r = v_list(l);
        break;
    }
    case E_DICT: {
        jdict *d = dict_new(c);
        for (int i = 0; i < e->n_args; i++) {
            jval k = eval(c, e->args[i].e);
            if (k.t != JV_STR) jfail(c, e->line, "dict keys must be strings, not %s", type_name(k));
            dict_set(c, d, k.u.s, eval(c, e->items[i]));
        }
        r = v_dict(d);
        break;
    }
    default: jfail(c, e->line, "internal error: expression kind %d", e->kind);
    }
    c->depth--;
    return r;
}

/* ---- execution ------------------------------------------------------------------------------ */

static void assign_targets(jctx *c, int line, const jstr *t, int n, jval v) {
    if (n == 1) {
        dict_set(c, c->frames[c->n_frames - 1], t[0], v);
        return;
    }
    jlist *l = iter_items(c, line, v);
    if ((int)l->n != n) jfail(c, line, "cannot unpack %zu values into %d names", l->n, n);
    for (int i = 0; i < n; i++) dict_set(c, c->frames[c->n_frames - 1], t[i], l->v[i]);
}

static void exec_for(jctx *c, const jstmt *s) {
    jval it = eval(c, s->e);
    jlist *all = iter_items(c, s->line, it);
    jlist *items = all;
    if (s->filter) { /* the filter sees the loop variables, not loop.* */
        items = list_new(c, all->n);
        for (size_t i = 0; i < all->n; i++) {
            push_frame(c);
            assign_targets(c, s->line, s->targets, s->n_targets, all->v[i]);
            bool keep = truthy(eval(c, s->filter));
            c->n_frames--;
            if (keep) list_push(c, items, all->v[i]);
        }
    }
    size_t n = items->n;
    for (size_t i = 0; i < n; i++) {
        push_frame(c);
        jdict *loop = dict_new(c);
        dict_set(c, loop, (jstr){"index", 5}, v_int((int64_t)i + 1));
        dict_set(c, loop, (jstr){"index0", 6}, v_int((int64_t)i));
        dict_set(c, loop, (jstr){"revindex", 8}, v_int((int64_t)(n - i)));
        dict_set(c, loop, (jstr){"revindex0", 9}, v_int((int64_t)(n - i - 1)));
        dict_set(c, loop, (jstr){"first", 5}, v_bool(i == 0));
        dict_set(c, loop, (jstr){"last", 4}, v_bool(i + 1 == n));
        dict_set(c, loop, (jstr){"length", 6}, v_int((int64_t)n));
        dict_set(c, loop, (jstr){"depth", 5}, v_int(1));
        dict_set(c, loop, (jstr){"depth0", 6}, v_int(0));
        if (i > 0) dict_set(c, loop, (jstr){"previtem", 8}, items->v[i - 1]);
        if (i + 1 < n) dict_set(c, loop, (jstr){"nextitem", 8}, items->v[i + 1]);
        dict_set(c, c->frames[c->n_frames - 1], (jstr){"loop", 4}, v_dict(loop));
        assign_targets(c, s->line, s->targets, s->n_targets, items->v[i]);
        exec_body(c, &s->body);
        c->n_frames--;
        c->cont = false;
        if (c->brk) {
            c->brk = false;
            break;
        }
    }
    if (n == 0) exec_body(c, &s->els);
}

static void exec_stmt(jctx *c, const jstmt *s) {
    switch (s->kind) {
    case S_TEXT: sb_add(c, c->out, s->text.p, s->text.n); return;
    case S_OUT: fmt_str(c, c->out, eval(c, s->e), 0); return;
    case S_IF:
        for (int i = 0; i < s->n_cond; i++) {
            if (truthy(eval(c, s->conds[i]))) {
                exec_body(c, &s->bodies[i]);
                return;
            }
        }
        exec_body(c, &s->els);
        return;
    case S_FOR: exec_for(c, s); return;
    case S_SET: {
        jval v = eval(c, s->e);
        if (s->attr.n) {
            jval ns = lookup(c, s->targets[0]);
            if (ns.t != JV_DICT || !ns.u.d->ns)
                jfail(c, s->line,
                      "cannot assign attribute '%.*s' on '%.*s', which is not a namespace()",
                      (int)s->attr.n, s->attr.p, (int)s->targets[0].n, s->targets[0].p);
            dict_set(c, ns.u.d, s->attr, v);
            return;
        }
        assign_targets(c, s->line, s->targets, s->n_targets, v);
        return;
    }
    case S_SETBLOCK: {
        jsb *saved = c->out;
        jsb cap = {0};
        sb_add(c, &cap, "", 0);
        c->out = &cap;
        exec_body(c, &s->body);
        c->out = saved;
        dict_set(c, c->frames[c->n_frames - 1], s->targets[0], v_str(sb_str(&cap)));
        return;
    }
    case S_BREAK: c->brk = true; return;
    case S_CONTINUE: c->cont = true; return;
    case S_BLOCK: exec_body(c, &s->body); return;
    case S_MACRO:
        dict_set(c, c->frames[c->n_frames - 1], s->targets[0], (jval){.t = JV_MACRO, .u.m = s});
        return;
    default: jfail(c, s->line, "internal error: statement kind %d", s->kind);
    }
}

static void exec_body(jctx *c, const jbody *b) {
    if (++c->depth > J_MAX_DEPTH) jfail(c, 0, "blocks nested too deeply");
    for (int i = 0; i < b->n && !c->brk && !c->cont; i++) exec_stmt(c, b->s[i]);
    c->depth--;
}

/* ---- API ------------------------------------------------------------------------------------ */

/* Newlines become "\n" and one trailing newline is dropped, as Jinja's lexer does. */
static jstr normalize_source(jctx *c, const char *t) {
    size_t n = strlen(t);
    char *o = ar_alloc(c, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\r') {
            o[k++] = '\n';
            if (i + 1 < n && t[i + 1] == '\n') i++;
        } else {
            o[k++] = t[i];
        }
    }
    if (k > 0 && o[k - 1] == '\n') k--;
    o[k] = 0;
    return (jstr){o, k};
}

static jstr cstr_or_empty(jctx *c, const char *s) {
    return s ? jstr_dup(c, s, strlen(s)) : (jstr){"", 0};
}

/* The render proper; errors longjmp out of it. Returns a malloc'd string or NULL (out of
 * memory, error set). */
static char *render(jctx *c, const char *tmpl, const sk_chat_msg *msgs, int n_msgs,
                    bool add_generation_prompt, const char *bos_token, const char *eos_token) {
    jstr src = normalize_source(c, tmpl);
    parser p = {0};
    p.c = c;
    lex_template(c, src.p, src.n, &p.segs);
    jbody root = {0};
    parse_body(&p, &root, NULL, 0, NULL, "", 0);

    push_frame(c);
    jdict *g = c->frames[0];
    jlist *ml = list_new(c, (size_t)n_msgs);
    for (int i = 0; i < n_msgs; i++) {
        jdict *m = dict_new(c);
        dict_set(c, m, (jstr){"role", 4}, v_str(cstr_or_empty(c, msgs[i].role)));
        dict_set(c, m, (jstr){"content", 7},
                 msgs[i].content ? v_str(cstr_or_empty(c, msgs[i].content)) : v_none());
        list_push(c, ml, v_dict(m));
    }
    dict_set(c, g, (jstr){"messages", 8}, v_list(ml));
    dict_set(c, g, (jstr){"add_generation_prompt", 21}, v_bool(add_generation_prompt));
    dict_set(c, g, (jstr){"bos_token", 9}, v_str(cstr_or_empty(c, bos_token)));
    dict_set(c, g, (jstr){"eos_token", 9}, v_str(cstr_or_empty(c, eos_token)));
    dict_set(c, g, (jstr){"tools", 5}, v_none());
    dict_set(c, g, (jstr){"documents", 9}, v_none());
    push_frame(c); /* the template's own variables */

    jsb out = {0};
    sb_add(c, &out, "", 0);
    c->out = &out;
    exec_body(c, &root);
    char *result = malloc(out.n + 1);
    if (!result) {
        sk_fail(SK_ERR_NOMEM, "chat template: out of memory");
        return NULL;
    }
    memcpy(result, out.p, out.n);
    result[out.n] = 0;
    return result;
}

char *sk_chat_render(const char *tmpl, const sk_chat_msg *msgs, int n_msgs,
                     bool add_generation_prompt, const char *bos_token, const char *eos_token) {
    if (!tmpl || n_msgs < 0 || (n_msgs > 0 && !msgs)) {
        sk_fail(SK_ERR_ARG, "chat template: bad arguments");
        return NULL;
    }
    jctx *c = sk_xcalloc(1, sizeof *c);
    char *volatile result = NULL;
    if (setjmp(c->jb) == 0)
        result = render(c, tmpl, msgs, n_msgs, add_generation_prompt, bos_token, eos_token);
    else
        sk_fail(SK_ERR_FORMAT, "%s", c->err);
    ar_free(c);
    free(c);
    return result;
}

char *sk_chat_apply(const sk_tokenizer *t, const sk_chat_msg *msgs, int n_msgs,
                    bool add_generation_prompt) {
    if (!t) {
        sk_fail(SK_ERR_ARG, "chat template: no tokenizer");
        return NULL;
    }
    const char *tmpl = t->v->chat_template ? t->v->chat_template : sk_chat_chatml_template;
    /* The texts of BOS and EOS (control tokens decode to their text). */
    char bos[256] = "", eos[256] = "";
    int nb = t->bos >= 0 ? sk_tokenizer_token_bytes(t, t->bos, bos, (int)sizeof bos - 1) : 0;
    int ne = t->eos >= 0 ? sk_tokenizer_token_bytes(t, t->eos, eos, (int)sizeof eos - 1) : 0;
    bos[nb < (int)sizeof bos ? nb : (int)sizeof bos - 1] = 0;
    eos[ne < (int)sizeof eos ? ne : (int)sizeof eos - 1] = 0;
    return sk_chat_render(tmpl, msgs, n_msgs, add_generation_prompt, bos, eos);
}
