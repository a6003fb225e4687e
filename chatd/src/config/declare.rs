//! The `settings!` macro, which turns the table in `settings.rs` into code.
//!
//! A row names a setting (its field is the config key, its flag is `--` and the key with
//! dashes), its type, its default if it has one, its range (see `ranges.rs`) and how a
//! reload applies it; the row's doc comment is the `--help` text, to which the range is
//! added. From the rows the macro writes:
//!
//! - `Layer`: every setting as an `Option`, what one source (the command line or the config
//!   file) says. It derives `clap::Args` and serde's traits, so a flag and a key cannot drift
//!   apart, and `--check-config` prints a `Layer`.
//! - `Settings::check_each`: every value against its row's range, the one place that
//!   happens (start-up, `--check-config` and reloads all call it through `Settings::check`).
//! - `Settings`: every setting's effective value, a layer over the defaults. A setting without
//!   a default stays an `Option` here.
//! - `KEYS`, and the few loops over every setting: layering (`Layer::or`), applying the
//!   defaults (`Layer::resolve`), rebasing relative paths, comparing two `Settings` key by
//!   key with `PartialEq`, and keeping the running value of the settings a reload cannot
//!   change.

/// See the module doc; the table is in `settings.rs`.
macro_rules! settings {
    // A setting without a default is unset unless a layer sets it.
    (@resolved $ty:ty) => { Option<$ty> };
    (@resolved $ty:ty, $default:expr) => { $ty };
    (@default $v:expr) => { $v };
    (@default $v:expr, $default:expr) => { $v.unwrap_or_else(|| $default) };
    (@layer $v:expr) => { $v.clone() };
    (@layer $v:expr, $default:expr) => { Some($v.clone()) };
    // A setting without a default is only checked when set.
    (@check $v:expr, $ty:ty, $range:expr) => {
        match &$v {
            Some(v) => $crate::config::ranges::Range::<$ty>::check(&$range, v),
            None => Ok(()),
        }
    };
    (@check $v:expr, $ty:ty, $range:expr, $default:expr) => {
        $crate::config::ranges::Range::<$ty>::check(&$range, &$v)
    };

    ($(
        $(#[$attr:meta])*
        $name:ident: $ty:ty $(= $default:expr)?, range: $range:expr, reload: $reload:ident;
    )*) => {
        /// What one source says about each setting: the command line, or the config file.
        /// The doc comments are the `--help` text; the fields are the file's keys.
        #[derive(Debug, Clone, Default, PartialEq)]
        #[derive(clap::Args, serde::Deserialize, serde::Serialize)]
        // Never under `#[serde(flatten)]`, where it would do nothing.
        #[serde(deny_unknown_fields)]
        #[command(mut_args(|a| {
            let range = Layer::range_of(a.get_id().as_str());
            $crate::config::ranges::in_help(a, range)
        }))]
        pub struct Layer {
            $(
                $(#[$attr])*
                #[arg(long)]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        /// Every setting's effective value: the layers over the defaults. Each field means
        /// what the [`Layer`] field of the same name says.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( pub $name: settings!(@resolved $ty $(, $default)?), )*
        }

        /// Every key of the config file, in the order of the table.
        pub const KEYS: &[&str] = &[$(stringify!($name)),*];

        impl Layer {
            /// This layer where it sets something, else `under`.
            pub fn or(self, under: Layer) -> Layer {
                Layer { $( $name: self.$name.or(under.$name), )* }
            }

            /// The defaults where this layer sets nothing.
            pub fn resolve(self) -> Settings {
                Settings { $( $name: settings!(@default self.$name $(, $default)?), )* }
            }

            /// Makes every relative path in this layer relative to `base` instead.
            pub fn rebase(&mut self, base: &std::path::Path) {
                use $crate::config::values::Rebase;
                $( if let Some(v) = &mut self.$name { v.rebase(base); } )*
            }

            /// The range of `key`'s row as the help and the errors say it (`None` for a
            /// row whose every value will do, or for an unknown key).
            pub fn range_of(key: &str) -> Option<String> {
                $( if key == stringify!($name) {
                    return $crate::config::ranges::Range::<$ty>::describe(&$range);
                } )*
                None
            }

            /// Whether this layer sets `key`.
            pub fn sets(&self, key: &str) -> bool {
                $( if key == stringify!($name) { return self.$name.is_some(); } )*
                false
            }

            /// One layer per key, each setting only that key as this one does, in table
            /// order: to write each value on its own.
            pub(crate) fn each(&self) -> Vec<(&'static str, Layer)> {
                vec![$(
                    (stringify!($name), Layer { $name: self.$name.clone(), ..Layer::default() }),
                )*]
            }
        }

        impl Default for Settings {
            fn default() -> Settings {
                Layer::default().resolve()
            }
        }

        impl Settings {
            /// Back to a layer, setting every key that has a value.
            pub fn to_layer(&self) -> Layer {
                Layer { $( $name: settings!(@layer self.$name $(, $default)?), )* }
            }

            /// Checks every value against its row's range; the first one out of range is
            /// the error, named by its key.
            pub fn check_each(&self) -> Result<(), $crate::config::ConfigError> {
                $(
                    settings!(@check self.$name, $ty, $range $(, $default)?)
                        .map_err(|reason| $crate::config::ConfigError {
                            key: stringify!($name),
                            reason,
                        })?;
                )*
                Ok(())
            }

            /// The keys whose value differs in `new`, in table order, each with how a reload
            /// applies it.
            pub fn changed(&self, new: &Settings) -> Vec<(&'static str, Reload)> {
                let mut out = Vec::new();
                $( if self.$name != new.$name { out.push((stringify!($name), Reload::$reload)); } )*
                out
            }

            /// Takes `running`'s value of every setting a reload applies as `reload`.
            pub fn keep(&mut self, reload: Reload, running: &Settings) {
                $( if Reload::$reload == reload { self.$name = running.$name.clone(); } )*
            }

            /// How a reload applies `key`, if it is a key.
            pub fn reload_of(key: &str) -> Option<Reload> {
                $( if key == stringify!($name) { return Some(Reload::$reload); } )*
                None
            }
        }
    };
}
