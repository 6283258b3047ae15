"""Switchboard's notifier: sends the e-mails agents ask for (SMTP or an HTTP e-mail API), at most once."""
