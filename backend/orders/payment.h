/*
 * payment.h: the backend's client of the payment provider (payments/ in
 * the repository is the local stand-in).  See payment.c.
 */

#ifndef CHAT_PAYMENT_H
#define CHAT_PAYMENT_H

#include <stdint.h>

#include "config.h"
#include "http_client.h"

typedef enum {
    CHAT_PAY_SUCCEEDED = 0,     /* charged */
    CHAT_PAY_DECLINED,          /* refused for good: nothing charged */
    CHAT_PAY_PROCESSING,        /* the provider is still deciding */
    CHAT_PAY_REFUNDED,          /* charged, then refunded */
    CHAT_PAY_NOT_FOUND,         /* the provider has no such payment */
    CHAT_PAY_UNKNOWN            /* no usable answer (timeout, 5xx, ...) */
} chat_pay_state_t;

typedef struct {
    chat_pay_state_t  state;
    char              id[80];       /* the provider's payment/refund id */
    char              code[64];     /* decline code, when declined */
    char              last4[5];     /* the card's last four digits, or "" */
    char              error[320];   /* why, when unknown */
} chat_pay_result_t;

/* a payment token is what the processor's tokenization gave the browser:
 * "tok_" and at most CHAT_PAY_TOKEN_MAX - 4 of [A-Za-z0-9_] */
#define CHAT_PAY_TOKEN_MAX  100

/*
 * Every call to the provider comes in two halves, so that a worker can
 * have many of them in flight (suspend.c, http_multi.c): *_call makes the
 * request, a chat_http_call_t with the deadline --payment-timeout-ms
 * (NULL when memory ran out), which the caller starts or performs;
 * *_result reads its outcome once it has finished.
 */

/* Creates and confirms a payment of the card behind token under key:
 * SUCCEEDED, DECLINED or UNKNOWN (then only a lookup can tell what
 * happened). */
chat_http_call_t *chat_payment_charge_call(const chat_config_t *cfg,
    const char *key, int64_t amount_cents, const char *currency,
    const char *token, int64_t order_id);

/* 1 when token has the shape of a processor's token, else 0. */
int chat_payment_token_valid(const char *token);
void chat_payment_charge_result(const chat_http_call_t *call,
    chat_pay_result_t *out);

/* The payment made under key: SUCCEEDED, DECLINED, PROCESSING, REFUNDED,
 * NOT_FOUND or UNKNOWN. */
chat_http_call_t *chat_payment_lookup_call(const chat_config_t *cfg,
    const char *key);
void chat_payment_lookup_result(const chat_http_call_t *call,
    chat_pay_result_t *out);

/* The payment with the provider's id, same states as the lookup. */
chat_http_call_t *chat_payment_get_call(const chat_config_t *cfg,
    const char *id);
void chat_payment_get_result(const chat_http_call_t *call,
    chat_pay_result_t *out);

/* Refunds amount_cents of payment id under key (the same key and amount
 * again is the same refund): REFUNDED (out->id is the refund's),
 * DECLINED (the provider refuses) or UNKNOWN. */
chat_http_call_t *chat_payment_refund_call(const chat_config_t *cfg,
    const char *id, const char *key, int64_t amount_cents);
void chat_payment_refund_result(const chat_http_call_t *call,
    chat_pay_result_t *out);

const char *chat_pay_state_text(chat_pay_state_t state);

#endif /* CHAT_PAYMENT_H */
