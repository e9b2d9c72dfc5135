// Sign-in through the stack's Cognito user pool (USER_PASSWORD_AUTH), session kept for the tab only.
import type { Config } from "./config";
import { byId } from "./ui";

const SESSION_KEY = "inventory.session";
// A token this close to its expiry is treated as expired: a request must not fail half-way.
const EXPIRY_MARGIN_SECONDS = 30;

export interface Session {
  username: string;
  groups: string[];
  accessToken: string;
  expiresAt: number; // epoch seconds
}

export class SignInError extends Error {}

export async function signIn(config: Config, username: string, password: string): Promise<Session> {
  let response: Response;
  try {
    response = await fetch(config.cognitoUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({
        AuthFlow: "USER_PASSWORD_AUTH",
        ClientId: config.userPoolClientId,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      }),
    });
  } catch {
    throw new SignInError("We couldn't reach the sign-in service. Check your connection and try again.");
  }
  const body = (await response.json().catch(() => ({}))) as {
    AuthenticationResult?: { AccessToken: string };
    __type?: string;
  };
  const token = body.AuthenticationResult?.AccessToken;
  if (!response.ok || !token) {
    const kind = body.__type ?? "";
    throw new SignInError(
      kind.includes("NotAuthorized") || kind.includes("UserNotFound")
        ? "That e-mail and password don't match an account."
        : "Sign-in failed. Please try again.",
    );
  }
  const claims = decodeClaims(token);
  const session: Session = {
    // The access token's username is an opaque id when users sign in by e-mail: show what they typed.
    username,
    groups: Array.isArray(claims["cognito:groups"]) ? (claims["cognito:groups"] as string[]) : [],
    accessToken: token,
    expiresAt: Number(claims["exp"] ?? 0),
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

/** Signs in with the page's sign-in form (`#signin-email`, `#signin-password`: both pages have
 *  one); the password field is emptied once it has served. */
export async function signInWithForm(config: Config): Promise<Session> {
  const password = byId<HTMLInputElement>("signin-password");
  const session = await signIn(config, byId<HTMLInputElement>("signin-email").value.trim(), password.value);
  password.value = "";
  return session;
}

/** The signed-in session, or null when there is none or it has (nearly) expired. */
export function currentSession(): Session | null {
  const stored = sessionStorage.getItem(SESSION_KEY);
  if (!stored) return null;
  try {
    const session = JSON.parse(stored) as Session;
    if (session.expiresAt - EXPIRY_MARGIN_SECONDS > Date.now() / 1000) return session;
  } catch {
    // A damaged entry is a signed-out tab.
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

export function signOut(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

// Only for display and expiry: the API Gateway authorizer verifies the signature, the function the group.
function decodeClaims(token: string): Record<string, unknown> {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "="))) as Record<string, unknown>;
  } catch {
    return {};
  }
}
