//! Back-in-stock sign-ups for shoppers, three routes of one function (one table, one mailer):
//! - POST /inventory/{productId}/back-in-stock `{email}` + Cart-Token: sign up (double opt-in, 202),
//! - GET /back-in-stock/confirm?token=: the confirmation e-mail's link,
//! - GET /back-in-stock/unsubscribe?token=: every e-mail's unsubscribe link.

use serde::Deserialize;
use shared::api::{self, Request};
use shared::back_in_stock::{self, EmailAddress, ShopperMail, SubscriptionToken, SubscriptionView};
use shared::domain::ProductId;
use shared::holds::CartToken;
use shared::store::{Mailer, StockReader, SubscriptionStore};
use shared::{auth, time, InventoryError};

pub const SIGN_UP_ROUTE: &str = "POST /inventory/{productId}/back-in-stock";
pub const CONFIRM_ROUTE: &str = "GET /back-in-stock/confirm";
pub const UNSUBSCRIBE_ROUTE: &str = "GET /back-in-stock/unsubscribe";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUpBody {
    email: String,
}

/// The handler: parse, call the use case of the route, map the result.
pub async fn handler(
    stock: &impl StockReader,
    shoppers: &ShopperMail<impl SubscriptionStore, impl Mailer>,
    request: &Request,
) -> Result<(u16, SubscriptionView), InventoryError> {
    match request.route_key.as_deref().unwrap_or_default() {
        SIGN_UP_ROUTE => {
            let product = ProductId::parse(api::path_param(request, "productId")?)?;
            api::query_params(request, &[])?;
            let cart = api::header(request, auth::CART_TOKEN_HEADER)?
                .map(CartToken::parse)
                .transpose()?
                .ok_or_else(|| {
                    InventoryError::invalid(
                        "Cart-Token",
                        "a sign-up needs a Cart-Token header: the random secret of your cart (sign-ups are limited per cart)",
                    )
                })?;
            let body: SignUpBody = api::json_body(request)?;
            let email = EmailAddress::parse(&body.email)?;
            back_in_stock::sign_up(stock, shoppers, product, email, &cart.cart(), time::now()).await
        }
        route @ (CONFIRM_ROUTE | UNSUBSCRIBE_ROUTE) => {
            let query = api::query_params(request, &["token"])?;
            let token = query.single("token")?.ok_or_else(|| {
                InventoryError::invalid("token", "token: missing (open the whole link from the e-mail)")
            })?;
            let token = SubscriptionToken::parse(token)?;
            if route == CONFIRM_ROUTE {
                back_in_stock::confirm(&shoppers.subscriptions, &token, time::now()).await
            } else {
                back_in_stock::unsubscribe(&shoppers.subscriptions, &token).await
            }
        }
        other => Err(InventoryError::internal(format!("no handler for route {other}"))),
    }
}
