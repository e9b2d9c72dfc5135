// The one way the pages call the inventory API: JSON in, JSON out, errors as ApiError.

export interface ErrorBody {
  code: string;
  message: string;
  request_id?: string;
  available?: number;
  current_version?: number;
  stock_count?: number;
  limit?: number;
  field?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.status = status;
    this.body = body;
  }

  get code(): string {
    return this.body.code;
  }
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  idempotencyKey?: string;
  cartToken?: string;
}

export async function apiRequest<T>(apiUrl: string, method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.token) headers["Authorization"] = `Bearer ${options.token}`;
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  if (options.cartToken) headers["Cart-Token"] = options.cartToken;
  let response: Response;
  try {
    response = await fetch(`${apiUrl}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    // A network failure, or a response the browser hid from us (e.g. without CORS headers).
    throw new ApiError(0, { code: "NETWORK", message: "The request did not reach the shop." });
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok) return parsed as T;
  throw new ApiError(response.status, errorBody(response, parsed));
}

function errorBody(response: Response, parsed: unknown): ErrorBody {
  const ours = (parsed as { error?: ErrorBody } | undefined)?.error;
  if (ours && typeof ours.code === "string") return ours;
  // API Gateway's own answers ({"message": ...}) for its authorizer and throttling.
  const message = (parsed as { message?: string } | undefined)?.message ?? response.statusText;
  const code = response.status === 401 ? "UNAUTHORIZED" : response.status === 429 ? "THROTTLED" : "HTTP_" + response.status;
  return { code, message, request_id: response.headers.get("x-request-id") ?? undefined };
}

export function path(...segments: string[]): string {
  return segments.map((segment) => "/" + encodeURIComponent(segment)).join("");
}
