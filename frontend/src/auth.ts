// Sign-in through the stack's Cognito user pool (SRP: USER_SRP_AUTH), session kept for the tab only.
import type { Config } from "./config";
import type { PasswordVerifierParameters } from "./srp";
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

const MISMATCH = "That e-mail and password don't match an account.";
const FAILED = "Sign-in failed. Please try again.";
const UNREACHABLE = "We couldn't reach the sign-in service. Check your connection and try again.";

interface CognitoAnswer {
  AuthenticationResult?: { AccessToken: string };
  ChallengeName?: string;
  ChallengeParameters?: Record<string, string>;
  Session?: string;
  __type?: string;
}

/** One call of Cognito's user-pool API; its refusals become a SignInError in plain words. */
async function cognito(config: Config, action: string, request: object): Promise<CognitoAnswer> {
  let response: Response;
  try {
    response = await fetch(config.cognitoUrl, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": `AWSCognitoIdentityProviderService.${action}`,
      },
      body: JSON.stringify(request),
    });
  } catch {
    throw new SignInError(UNREACHABLE);
  }
  const body = (await response.json().catch(() => ({}))) as CognitoAnswer;
  if (!response.ok) {
    const kind = body.__type ?? "";
    throw new SignInError(kind.includes("NotAuthorized") || kind.includes("UserNotFound") ? MISMATCH : FAILED);
  }
  return body;
}

/** Signs in with SRP (USER_SRP_AUTH, then PASSWORD_VERIFIER): the password never leaves the page,
 *  only a proof that the page knows it. */
export async function signIn(config: Config, username: string, password: string): Promise<Session> {
  // Loaded on the first sign-in only: most visits never sign in, and the SRP code is most of the script.
  let srp: typeof import("./srp");
  try {
    srp = await import("./srp");
  } catch {
    throw new SignInError(UNREACHABLE);
  }
  const ephemeral = srp.srpEphemeral();
  const challenge = await cognito(config, "InitiateAuth", {
    AuthFlow: "USER_SRP_AUTH",
    ClientId: config.userPoolClientId,
    AuthParameters: { USERNAME: username, SRP_A: ephemeral.srpA },
  });
  if (challenge.ChallengeName !== "PASSWORD_VERIFIER" || !challenge.ChallengeParameters) throw new SignInError(FAILED);
  let responses: Record<string, string>;
  try {
    responses = srp.passwordVerifierResponses(config.userPoolId, password, ephemeral,
      challenge.ChallengeParameters as unknown as PasswordVerifierParameters);
  } catch {
    // A challenge the page cannot answer (a bad SRP_B or salt, a config.json without userPoolId).
    throw new SignInError(FAILED);
  }
  const body = await cognito(config, "RespondToAuthChallenge", {
    ChallengeName: "PASSWORD_VERIFIER",
    ClientId: config.userPoolClientId,
    ChallengeResponses: responses,
    ...(challenge.Session ? { Session: challenge.Session } : {}),
  });
  const token = body.AuthenticationResult?.AccessToken;
  // Another challenge (a new password required, MFA) is not something these pages offer.
  if (!token) throw new SignInError(FAILED);
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
