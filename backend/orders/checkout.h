/*
 * checkout.h: what op_checkout.c (the flow: input, the key, the call,
 * settling) and checkout_reserve.c (tx 1: the reservation, the group
 * lock) share, and nothing else includes.
 */

#ifndef CHAT_CHECKOUT_H
#define CHAT_CHECKOUT_H

#include <stdint.h>

#include <libpq-fe.h>

#include "ops.h"
#include "payment.h"


/* how long after a call begins nobody else asks the provider about it */
#define CHAT_PAYMENT_LEASE_MARGIN_MS  2000

typedef struct {
    chat_op_ctx_t  *ctx;
    const char     *key;
    char            hash[65];           /* hex HMAC of op "\n" body */
    char            token[CHAT_PAY_TOKEN_MAX + 1];  /* the processor's */
    char           *address;            /* JSON text, malloc'd */
    char            region[65];         /* lowercased; "" none */
    int64_t         order_id;
    int64_t         total;
    char            currency[4];
    PGresult       *cart;               /* tx 1's cart rows, claimed */
} chat_checkout_t;


/*
 * In the transaction the key's claim opened, with its cart rows: reserves
 * and records everything, commits.  1 with co->order_id set, 0 after a
 * refusal (committed), -1 (rolled back).
 */
int chat_checkout_reserve(chat_checkout_t *co);

#endif /* CHAT_CHECKOUT_H */
