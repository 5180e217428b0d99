"""Platform helpers for the BUILD files."""

# target_compatible_with for targets the Windows build leaves out; write the
# reason beside each use. Their dependents are left out with them.
NOT_ON_WINDOWS = select({
    "//bazel:windows": ["//bazel:incompatible"],
    "//conditions:default": [],
})
