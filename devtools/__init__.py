"""Development-only tools, never imported by the product: the development LMS (`devplatform`, on the
`lti1p3platform` library), a requests-based LTI browser for tests (`testing`) and the `lti_dev_lms`
command.  kdgrade.settings installs this app only outside production."""
