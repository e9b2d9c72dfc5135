//! Who is calling, from the claims API Gateway's JWT authorizer has already verified. Nothing here
//! trusts a header or body field for identity; a route without the authorizer has no caller.

use std::collections::HashMap;

use crate::api::{self, Request};
use crate::error::InventoryError;
use crate::holds::{CartToken, Holder, HolderProof};
use crate::limits::ADMIN_GROUP;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: stable, unique per user.
    pub subject: String,
    pub username: Option<String>,
    pub groups: Vec<String>,
}

impl Caller {
    /// The verified caller, if the route has an authorizer and it passed a token with a subject.
    pub fn from_request(request: &Request) -> Option<Self> {
        let claims = &request.request_context.authorizer.as_ref()?.jwt.as_ref()?.claims;
        Self::from_claims(claims)
    }

    pub fn from_claims(claims: &HashMap<String, String>) -> Option<Self> {
        let subject = claims.get("sub").filter(|s| !s.is_empty())?.clone();
        let username = claims.get("cognito:username").or_else(|| claims.get("username")).cloned();
        // API Gateway passes a JSON array claim to Lambda as "[a b]".
        let groups = claims
            .get("cognito:groups")
            .map(|raw| {
                raw.trim_matches(|c| c == '[' || c == ']')
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(Self { subject, username, groups })
    }

    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == ADMIN_GROUP)
    }

    /// How audit records name this caller.
    pub fn actor(&self) -> String {
        format!("user:{}", self.username.as_deref().unwrap_or(&self.subject))
    }
}

/// The signed-in caller, or 401.
pub fn signed_in(request: &Request) -> Result<Caller, InventoryError> {
    Caller::from_request(request).ok_or(InventoryError::Unauthorized)
}

/// The caller if a member of the admin group, or 403.
pub fn require_admin(caller: Caller) -> Result<Caller, InventoryError> {
    if caller.is_admin() {
        Ok(caller)
    } else {
        Err(InventoryError::Forbidden {
            message: format!("managing stock needs membership of the {ADMIN_GROUP} group"),
        })
    }
}

/// The `Cart-Token` header, if sent (a malformed one is refused, not ignored).
fn cart_token(request: &Request) -> Result<Option<CartToken>, InventoryError> {
    api::header(request, CART_TOKEN_HEADER)?.map(CartToken::parse).transpose()
}

pub const CART_TOKEN_HEADER: &str = "cart-token";

/// Who places a hold: the cart of the `Cart-Token` header (required), and the verified signed-in
/// user where the route has the authorizer. With `require_sign_in`, an anonymous caller is refused.
pub fn holder(request: &Request, require_sign_in: bool) -> Result<Holder, InventoryError> {
    let cart = cart_token(request)?.ok_or_else(|| {
        InventoryError::invalid(
            "Cart-Token",
            "a hold needs a Cart-Token header: a random secret of your cart (e.g. 32 random bytes in base64url), \
             sent again to release or check out the hold",
        )
    })?;
    let caller = Caller::from_request(request);
    if require_sign_in && caller.is_none() {
        return Err(InventoryError::Unauthorized);
    }
    let actor = caller.as_ref().map_or_else(|| ANONYMOUS_ACTOR.to_owned(), Caller::actor);
    Ok(Holder { cart: cart.cart(), user: caller.map(|caller| caller.subject), actor })
}

/// What the caller shows to end a hold: the cart of its `Cart-Token` header and its verified user.
pub fn holder_proof(request: &Request) -> Result<HolderProof, InventoryError> {
    Ok(HolderProof {
        cart: cart_token(request)?.map(|token| token.cart()),
        user: Caller::from_request(request).map(|caller| caller.subject),
    })
}

/// How audit records name an anonymous shopper.
pub const ANONYMOUS_ACTOR: &str = "shopper";

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn groups_arrive_as_a_bracketed_list() {
        let caller =
            Caller::from_claims(&claims(&[("sub", "u1"), ("cognito:groups", "[shoppers inventory-admins]")])).unwrap();
        assert_eq!(caller.groups, ["shoppers", "inventory-admins"]);
        assert!(caller.is_admin());
    }

    #[test]
    fn no_group_is_no_admin() {
        let caller = Caller::from_claims(&claims(&[("sub", "u1"), ("cognito:username", "sam")])).unwrap();
        assert!(!caller.is_admin());
        assert_eq!(caller.actor(), "user:sam");
        // A group whose name merely contains the admin group's is not it.
        let lookalike =
            Caller::from_claims(&claims(&[("sub", "u2"), ("cognito:groups", "[not-inventory-admins]")])).unwrap();
        assert!(!lookalike.is_admin());
    }

    #[test]
    fn no_subject_is_no_caller() {
        assert!(Caller::from_claims(&claims(&[("cognito:groups", "[inventory-admins]")])).is_none());
        assert!(Caller::from_claims(&claims(&[("sub", "")])).is_none());
    }

    #[test]
    fn a_request_without_an_authorizer_has_no_caller() {
        assert_eq!(signed_in(&Request::default()).unwrap_err(), InventoryError::Unauthorized);
    }
}
