// Every API error in plain words. The request id goes along where a person may need to report it.
import { ApiError } from "./api";

export function explain(error: unknown): string {
  if (!(error instanceof ApiError)) return "Something went wrong. Please try again.";
  const body = error.body;
  switch (body.code) {
    case "INSUFFICIENT_STOCK": {
      const left = body.available ?? 0;
      return left > 0
        ? `Not enough stock: only ${left} left. Choose ${left} or fewer.`
        : "Sorry, this just sold out.";
    }
    case "RESERVATION_EXPIRED":
      return "Your hold ran out and the items went back on sale. Add it to your cart again.";
    case "RESERVATION_RELEASED":
      return "This item was already removed from your cart.";
    case "RESERVATION_COMMITTED":
      return "Already bought. Nothing more to do.";
    case "RESERVATION_NOT_FOUND":
      return "We can't find this hold any more. Add the item to your cart again.";
    case "PRODUCT_NOT_FOUND":
      return "We don't have a product with that id.";
    case "STOCK_BELOW_ZERO":
      return `That would take stock below zero: there are ${body.stock_count ?? 0} on hand.`;
    case "STOCK_ABOVE_LIMIT":
      return `That would take stock past the most one item can hold: there are ${body.stock_count ?? 0} on hand.`;
    case "CART_UNITS_LIMIT":
      return `A cart may hold at most ${body.limit ?? "a few"} of this product. Check out or remove some first.`;
    case "CART_HOLDS_LIMIT":
      return `Your cart is full (${body.limit ?? "the most"} items on hold). Check out or remove an item first.`;
    case "PRODUCT_IN_STOCK":
      return "Good news: it's in stock now. Add it to your cart.";
    case "TOO_MANY_SIGN_UPS":
      return `${body.message}.`;
    case "SUBSCRIPTION_NOT_FOUND":
      return body.message;
    case "IDEMPOTENCY_KEY_REUSED":
      return "That request was already made with different details. Please try again.";
    case "VERSION_CONFLICT":
      return "Someone else changed this item while you were editing it. Check the current numbers and save again.";
    case "INVALID_INPUT":
      return `Please check your input: ${body.message}`;
    case "UNAUTHORIZED":
      return "Your session has ended. Please sign in again.";
    case "FORBIDDEN":
      return "Your account is not allowed to do this.";
    case "SERVICE_UNAVAILABLE":
    case "THROTTLED":
      return "The shop is very busy right now. Please try again in a moment.";
    case "NETWORK":
      return "We couldn't reach the shop. Check your connection and try again.";
    default:
      return `Something went wrong on our side${body.request_id ? ` (reference ${body.request_id})` : ""}. Please try again.`;
  }
}
