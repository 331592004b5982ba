"""The gateway's tests (a package, so its test kit is imported as ``.gateway_testkit``)."""
