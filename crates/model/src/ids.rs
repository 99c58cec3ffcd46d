//! Newtype ids: one type per entity so a machine id can never be passed where an order id is
//! expected. They are positive integers assigned by the store and serialise as plain numbers.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A site: one factory location with its own calendar and time zone.
    SiteId,
    /// An area or production line within a site.
    LineId,
    /// A machine or manual work centre.
    MachineId,
    /// A raw material that appears in bills of materials.
    MaterialId,
    /// A product (a family of sellable variants).
    ProductId,
    /// A sellable product variant: the thing a customer orders.
    VariantId,
    /// A routing: the ordered operations that make a variant.
    RoutingId,
    /// A customer order.
    OrderId,
    /// One operation of a customer order (a routing step applied to the order's quantity).
    OperationId,
    /// A user account.
    UserId,
);
