// Package auth is how an account logs in, for IMAP and POP3 alike: one
// Auth value per account, built once from explicit fields (New, Config)
// by the command line today and by a configuration file later, and used
// by every connection of a run.
//
// Three methods:
//
//   - password: the user's own password, sent with the protocol's login
//     command (IMAP LOGIN, POP3 USER/PASS), or SASL PLAIN (RFC 4616) when
//     IMAP says LOGINDISABLED or PLAIN is forced;
//   - admin: an admin's name and password with the mailbox's user as the
//     SASL PLAIN authorization identity ("alice\0admin\0secret"), which is
//     how Dovecot master users and Cyrus admins reach any mailbox.
//     Dovecot's other form, LOGIN "alice*admin" with the admin's password
//     (auth_master_user_separator = *), is an ordinary password login of
//     the user "alice*admin" and needs nothing from this package;
//   - oauth2: an access token from a TokenSource, sent with SASL XOAUTH2
//     (Google's and Microsoft's; go-sasl dropped it) or OAUTHBEARER (RFC
//     7628), chosen from the server's offer (XOAUTH2 unless only
//     OAUTHBEARER is offered) or forced.
//
// The adapters (imapstore, pop3store) own the wire: Auth.Login tells them
// what to send (an Attempt) and they report a refusal as a RefusedError,
// which Login turns into one error wrapping ErrAuth, with an explanation
// when the server's answer shows that the account does not take passwords
// at all (Gmail's "application-specific password required", Exchange
// Online's bare "LOGIN failed."). The token of an OAuth2 login is asked
// for on every login, so a long run that outlives a token (60 to 90
// minutes) gets a fresh one on its next connection or reconnect, and once
// more after a refused token (CommandTokens then sets
// MAILVAULT_OAUTH2_RETRY=1 so that a caching command fetches a new one).
//
// Where the secret comes from — which flag, file, environment variable or
// prompt — is the caller's business (cmd/mailvault, internal/secret): this
// package only holds it, and no error, log line or String of it contains
// a password or a token.
//
// The files microsoft.go and tokenfile.go hold the Microsoft identity
// platform flows behind "mailvault auth": the device-code login, the
// refresh grant whose rotated refresh token is saved atomically in a 0600
// file, and the client-credentials grant of app-only access.
package auth
