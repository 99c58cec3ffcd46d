//! What the factory makes: materials, products and their variants with bills of materials, and the
//! routings (ordered operations) that make them.

use serde::{Deserialize, Serialize};

use crate::validate::{FieldError, Validate, check_range};
use crate::{MachineId, MaterialId, ProductId, RoutingId, VariantId, check_code, check_name};

/// A raw material or purchased part, measured in kilograms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Material {
    /// Store-assigned id.
    pub id: MaterialId,
    /// Short unique code, e.g. `al-6061`.
    pub code: String,
    /// Human name.
    pub name: String,
}

/// A material to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaterial {
    /// See [`Material::code`].
    pub code: String,
    /// See [`Material::name`].
    pub name: String,
}

impl Validate for NewMaterial {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        out
    }
}

/// A product: a family of variants sharing a design (e.g. "Aluminium phone stand").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Product {
    /// Store-assigned id.
    pub id: ProductId,
    /// Short unique code.
    pub code: String,
    /// Human name.
    pub name: String,
    /// Product family, for reporting (e.g. `enclosures`).
    pub family: String,
}

/// A product to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// See [`Product::code`].
    pub code: String,
    /// See [`Product::name`].
    pub name: String,
    /// See [`Product::family`].
    pub family: String,
}

impl Validate for NewProduct {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        check_code("family", &self.family, &mut out);
        out
    }
}

/// One line of a bill of materials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BomLine {
    /// The material consumed.
    pub material_id: MaterialId,
    /// Kilograms of it per finished unit (including scrap allowance).
    pub kg_per_unit: f64,
}

/// A sellable variant of a product (colour, size, material option): what a customer orders.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Variant {
    /// Store-assigned id.
    pub id: VariantId,
    /// The product this is a variant of.
    pub product_id: ProductId,
    /// Short unique code, e.g. `stand-al-black`; orders and CSV imports name variants by it.
    pub code: String,
    /// Human name.
    pub name: String,
    /// How the variant is made; orders of a variant without a routing cannot be created.
    pub routing_id: Option<RoutingId>,
    /// Bill of materials per unit.
    pub bom: Vec<BomLine>,
}

/// A variant to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    /// See [`Variant::product_id`].
    pub product_id: ProductId,
    /// See [`Variant::code`].
    pub code: String,
    /// See [`Variant::name`].
    pub name: String,
    /// See [`Variant::routing_id`].
    #[serde(default)]
    pub routing_id: Option<RoutingId>,
    /// See [`Variant::bom`].
    #[serde(default)]
    pub bom: Vec<BomLine>,
}

impl Validate for NewVariant {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        if self.bom.len() > 200 {
            out.push(FieldError::new("bom", "must have at most 200 lines"));
        }
        for (i, line) in self.bom.iter().enumerate() {
            check_range(&format!("bom[{i}].kg_per_unit"), line.kg_per_unit, 0.0, 100_000.0, &mut out);
        }
        out
    }
}

/// One step of a routing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingStep {
    /// What happens, e.g. `rough milling`.
    pub name: String,
    /// Machines that can do it (alternatives; the planner picks one).
    pub eligible_machines: Vec<MachineId>,
    /// Setup time before a batch, in seconds, when the machine changes setup family.
    #[serde(default)]
    pub setup_seconds: u32,
    /// Processing time per unit, in seconds.
    pub unit_seconds: f64,
    /// Batches of the same family on the same machine in a row need no setup between them.
    pub setup_family: String,
}

/// An ordered list of steps that makes a variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Routing {
    /// Store-assigned id.
    pub id: RoutingId,
    /// Short unique code.
    pub code: String,
    /// Human name.
    pub name: String,
    /// The steps in processing order.
    pub steps: Vec<RoutingStep>,
}

/// The most steps a routing may have.
pub const MAX_ROUTING_STEPS: usize = 100;

/// A routing to create, or the new contents of an existing one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRouting {
    /// See [`Routing::code`].
    pub code: String,
    /// See [`Routing::name`].
    pub name: String,
    /// See [`Routing::steps`].
    pub steps: Vec<RoutingStep>,
}

impl Validate for NewRouting {
    fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        check_code("code", &self.code, &mut out);
        check_name("name", &self.name, &mut out);
        if self.steps.is_empty() || self.steps.len() > MAX_ROUTING_STEPS {
            out.push(FieldError::new("steps", format!("must have 1 to {MAX_ROUTING_STEPS} steps")));
        }
        for (i, step) in self.steps.iter().enumerate() {
            check_name(&format!("steps[{i}].name"), &step.name, &mut out);
            if step.eligible_machines.is_empty() {
                out.push(FieldError::new(
                    format!("steps[{i}].eligible_machines"),
                    "must name at least one machine",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(twice) = step.eligible_machines.iter().find(|m| !seen.insert(**m)) {
                out.push(FieldError::new(
                    format!("steps[{i}].eligible_machines"),
                    format!("names machine {twice} twice"),
                ));
            }
            if step.setup_seconds > 7 * 86_400 {
                out.push(FieldError::new(format!("steps[{i}].setup_seconds"), "must be at most one week"));
            }
            check_range(
                &format!("steps[{i}].unit_seconds"),
                step.unit_seconds,
                0.001,
                7.0 * 86_400.0,
                &mut out,
            );
            check_code(&format!("steps[{i}].setup_family"), &step.setup_family, &mut out);
        }
        out
    }
}
