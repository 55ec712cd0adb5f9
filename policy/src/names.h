// The Kubernetes apimachinery rules for names and labels (k8s.io/apimachinery/pkg/util/
// validation), which Calico's validator applies too: each returns the reason a value is
// refused, worded as the API server words it, or nothing when it is valid.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace zonewall::policy {

/// A label key (or annotation key): an optional DNS-subdomain prefix and '/', then a name of
/// at most 63 alphanumerics, '-', '_', '.', alphanumeric at both ends (IsQualifiedName).
std::optional<std::string> qualifiedNameError(std::string_view key);
/// A label value: empty, or at most 63 characters as a qualified name's name part.
std::optional<std::string> labelValueError(std::string_view value);
/// Lower-case RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
bool isDns1123Label(std::string_view s);
/// Dot-separated RFC 1123 labels, at most 253 characters.
bool isDns1123Subdomain(std::string_view s);

}  // namespace zonewall::policy
