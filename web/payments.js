// payments.js: the card goes to the payment processor, never to us.
//
// As with Stripe.js: the page posts the card fields straight to the
// processor's own origin (POST <tokenize_url>, which allows any origin)
// and gets back an opaque token that pays once; the checkout sends only
// {token}.  Where the processor is comes from the server's configuration,
// GET /api/v1/payments/config -> {tokenize_url} (conf/nginx.conf.in), so
// an operator points the page at their processor without touching it.

import { api, ApiError } from './api.js';

let config = null;

export async function paymentsConfig() {
  config ??= await api('GET', '/api/v1/payments/config');
  return config;
}

// card {number, exp_month, exp_year, cvc} -> the processor's token object
// {id: "tok_...", card: {brand, last4, exp_month, exp_year}}; errors as
// ApiError with the processor's code (e.g. invalid_card)
export async function tokenizeCard(card) {
  const { tokenize_url: url } = await paymentsConfig();
  let res;
  try {
    // no credentials: nothing of ours goes to the processor
    res = await fetch(url, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ card }), credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'network', 'the payment processor cannot be reached');
  }
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new ApiError(res.status, json.error?.code ?? `http_${res.status}`,
      json.error?.message ?? `the payment processor answered ${res.status}`);
  }
  return json;
}
