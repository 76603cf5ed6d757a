/* Chat templates: a Jinja2 interpreter for the subset that model chat templates use, rendering
 * the way Hugging Face transformers does (an environment with trim_blocks and lstrip_blocks,
 * loop controls, raise_exception, strftime_now and a tojson that keeps non-ASCII text). */
#ifndef SK_CHAT_H
#define SK_CHAT_H

#include "tokenizer/tokenizer.h"

/* The template that sk_chat_apply uses when the vocabulary has none. */
extern const char sk_chat_chatml_template[];

/* Renders tmpl with the variables messages (a list of {role, content}; a NULL content is None),
 * add_generation_prompt, bos_token and eos_token (NULL: ""), tools and documents (None).
 * Returns a malloc'd string, or NULL with the error set ("chat template: line N: ..." naming
 * the construct it cannot render, or the message of raise_exception). */
char *sk_chat_render(const char *tmpl, const sk_chat_msg *msgs, int n_msgs,
                     bool add_generation_prompt, const char *bos_token, const char *eos_token);

#endif
