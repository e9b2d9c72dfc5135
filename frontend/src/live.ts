// Live stock updates: one WebSocket to the stack's WebSocket API, which pushes every stock change of
// the products a page subscribed to. The pages stay right without it: while it is down they poll,
// and after every (re)connect they fetch again what a push may have missed meanwhile.

export type StockStatus = "IN_STOCK" | "LOW_STOCK" | "OUT_OF_STOCK";

/** The figures GET /inventory/{id} answers, for the product and for each warehouse. */
interface Figures {
  stock_count: number;
  reserved_count: number;
  available: number;
  threshold_level: number;
  status: StockStatus;
  last_updated: string;
  sequence?: number; // only grows: the product's, or the warehouse item's
}

/** One warehouse's figures. */
export interface WarehouseFigures extends Figures {
  warehouse_id: string;
  max_per_cart: number;
  version: number;
  shards: number; // the item's stock is split over this many partitions; the figures are their sums
}

/** A push: exactly GET /inventory/{id}'s body, plus its type. */
export interface StockPush extends Figures {
  type: "stock";
  product_id: string;
  warehouses: WarehouseFigures[];
}

export interface LiveHandlers {
  /** The socket opened (true) or closed (false). */
  onLive(live: boolean): void;
  /** A stock change of a subscribed product. */
  onStock(push: StockPush): void;
  /** Whenever the server confirms a subscription (after every (re)connect, and every change of
   *  products), and once more a moment later: fetch again, since a change made while the socket was
   *  down, or before the subscription was in place everywhere, was not pushed. */
  onReconnect(): void;
}

// The server finds a product's watchers through an eventually consistent index: a change in the
// first moments after a subscription may miss a new watcher, so the page fetches once more then.
const REFETCH_AFTER_SUBSCRIBED_MS = 2_000;

const BACKOFF_BASE_MS = 1_000;
const BACKOFF_CAP_MS = 30_000;
// A connection that stayed open this long was a good one: the next failure starts the backoff anew.
const STABLE_AFTER_MS = 10_000;
const MOST_PRODUCTS_PER_MESSAGE = 50; // the server's limit on one (un)subscribe

export class LiveSocket {
  private socket: WebSocket | null = null;
  private openedAt: number | null = null; // epoch ms; null while not open
  private failures = 0; // connections in a row that failed or did not last
  private retry: number | undefined;
  private confirming = false; // opened, its subscription not confirmed yet
  private refused = false; // the server refused the subscription: not live, the page polls
  private refetch: number | undefined;
  private products: string[] = [];
  private allProducts = false;
  private paused = false; // the page is hidden in the back/forward cache
  private stopped = false;

  /** `url` is asked at every (re)connect (a token in it may have changed); null: do not connect. */
  constructor(private readonly url: () => string | null, private readonly handlers: LiveHandlers) {
    window.addEventListener("pagehide", this.onPageHide);
    window.addEventListener("pageshow", this.onPageShow);
    document.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  /** Open, and the server has not refused what the page asked to watch. */
  get live(): boolean {
    return this.socket?.readyState === WebSocket.OPEN && !this.refused;
  }

  /** Follows `products` from now on instead of those before. */
  subscribe(products: string[]): void {
    const before = this.products;
    this.products = [...new Set(products)];
    this.sendProducts("unsubscribe", before.filter((id) => !this.products.includes(id)));
    this.sendProducts("subscribe", this.products.filter((id) => !before.includes(id)));
  }

  /** Follows every product (admins only: the server refuses it to others). */
  subscribeAll(): void {
    if (this.allProducts) return;
    this.allProducts = true;
    this.send({ action: "subscribe", all_products: true });
  }

  /** Closes the socket for good (sign-out). */
  close(): void {
    this.stopped = true;
    window.removeEventListener("pagehide", this.onPageHide);
    window.removeEventListener("pageshow", this.onPageShow);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.disconnect();
  }

  // --- connecting ---------------------------------------------------------------------------------

  private connect(): void {
    if (this.stopped || this.paused || this.socket || this.retry !== undefined) return;
    const url = this.url();
    if (!url) return;
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      console.warn("Live updates are off: the WebSocket URL is not usable.", error);
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => socket === this.socket && this.opened());
    socket.addEventListener("message", (event) => socket === this.socket && this.received(event.data));
    // An error is always followed by a close, which decides what happens next.
    socket.addEventListener("close", () => socket === this.socket && this.closed());
  }

  private opened(): void {
    this.openedAt = Date.now();
    this.confirming = true;
    this.refused = false;
    this.handlers.onLive(true);
    if (this.allProducts) this.send({ action: "subscribe", all_products: true });
    this.sendProducts("subscribe", this.products);
    if (!this.allProducts && this.products.length === 0) this.confirmed();
  }

  private closed(): void {
    window.clearTimeout(this.refetch);
    this.refetch = undefined;
    const wasOpen = this.openedAt !== null;
    if (this.openedAt !== null && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.failures = 0;
    this.socket = null;
    this.openedAt = null;
    this.confirming = false;
    if (wasOpen) this.handlers.onLive(false);
    this.scheduleRetry();
  }

  /** Exponential backoff with full jitter: a random wait up to base·2ⁿ (at most the cap), so pages
   *  that lost the same server do not all come back at the same moment. */
  private scheduleRetry(): void {
    if (this.stopped || this.paused) return;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.failures);
    this.failures += 1;
    this.retry = window.setTimeout(() => {
      this.retry = undefined;
      // A hidden tab reconnects when it is shown again (onVisible).
      if (!document.hidden) this.connect();
    }, Math.random() * ceiling);
  }

  /** Closes the socket, if any, without a reconnect. */
  private disconnect(): void {
    window.clearTimeout(this.retry);
    this.retry = undefined;
    window.clearTimeout(this.refetch);
    this.refetch = undefined;
    const socket = this.socket;
    if (!socket) return;
    const wasOpen = this.openedAt !== null;
    this.socket = null;
    this.openedAt = null;
    this.confirming = false;
    socket.close(1000);
    if (wasOpen) this.handlers.onLive(false);
  }

  private readonly onPageHide = (): void => {
    this.paused = true;
    this.disconnect();
  };

  // A page restored from the back/forward cache: connect again (and so fetch again).
  private readonly onPageShow = (event: PageTransitionEvent): void => {
    if (!event.persisted || !this.paused) return;
    this.paused = false;
    this.connect();
  };

  private readonly onVisible = (): void => {
    if (!document.hidden) this.connect();
  };

  // --- messages -----------------------------------------------------------------------------------

  private received(data: unknown): void {
    const message = parseMessage(data);
    if (!message) return;
    switch (message.type) {
      case "stock":
        if (isStockPush(message)) this.handlers.onStock(message);
        break;
      case "subscribed":
        if (this.refused) {
          this.refused = false;
          this.handlers.onLive(true);
        }
        this.confirming = false;
        this.caughtUp();
        break;
      case "error":
        console.warn(`Live updates: the server said ${String(message.error)}: ${String(message.message)}`);
        // A refused subscription: the page is not watching what it shows, so it polls instead.
        this.confirming = false;
        if (!this.refused) {
          this.refused = true;
          this.handlers.onLive(false);
        }
        break;
    }
  }

  /** Without anything to confirm (nothing subscribed yet): caught up at once. */
  private confirmed(): void {
    if (!this.confirming) return;
    this.confirming = false;
    this.caughtUp();
  }

  /** Fetch again now, and once more a moment later (see REFETCH_AFTER_SUBSCRIBED_MS). */
  private caughtUp(): void {
    this.handlers.onReconnect();
    window.clearTimeout(this.refetch);
    this.refetch = window.setTimeout(() => {
      this.refetch = undefined;
      if (this.live) this.handlers.onReconnect();
    }, REFETCH_AFTER_SUBSCRIBED_MS);
  }

  private sendProducts(action: "subscribe" | "unsubscribe", products: string[]): void {
    for (let start = 0; start < products.length; start += MOST_PRODUCTS_PER_MESSAGE) {
      this.send({ action, products: products.slice(start, start + MOST_PRODUCTS_PER_MESSAGE) });
    }
  }

  /** Sends now if open; what is subscribed is sent again on every open anyway. */
  private send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }
}

type Message = Record<string, unknown> & { type: string };

/** A server message, or null for anything that is not a JSON object with a type (ignored). */
function parseMessage(data: unknown): Message | null {
  if (typeof data !== "string") return null;
  try {
    const value: unknown = JSON.parse(data);
    if (typeof value === "object" && value !== null && typeof (value as Message).type === "string") return value as Message;
  } catch {
    // Not JSON.
  }
  return null;
}

function isStockPush(message: Message): message is Message & StockPush {
  return typeof message.product_id === "string" && typeof message.available === "number" &&
    typeof message.status === "string" && Array.isArray(message.warehouses) &&
    message.warehouses.every((warehouse: unknown) => typeof warehouse === "object" && warehouse !== null &&
      typeof (warehouse as WarehouseFigures).warehouse_id === "string" &&
      typeof (warehouse as WarehouseFigures).available === "number");
}

/** The live indicator (#live-indicator): "Live" while the socket is open, else how the page keeps up. */
export function renderLiveIndicator(node: HTMLElement, live: boolean, otherwise: string): void {
  node.dataset.live = String(live);
  node.textContent = live ? "Live" : otherwise;
}

/** A page never goes backwards: it keeps the sequence of the figures it shows, per product (the
 *  admin panel: per item), and an answer (a GET's, the list's or a push) with a lower one is older
 *  than what is shown and is dropped. */
export class ShownSequences {
  private readonly shown = new Map<string, number>();

  /** Whether figures of `product` with `sequence` may be shown; if so, theirs is the shown sequence now.
   *  Equal is fine (the same figures again); a missing sequence (an older API) is always taken. */
  accept(product: string, sequence: number | undefined): boolean {
    if (typeof sequence !== "number") return true;
    if (sequence < (this.shown.get(product) ?? -Infinity)) return false;
    this.shown.set(product, sequence);
    return true;
  }

  forget(): void {
    this.shown.clear();
  }
}
