// Package config reads the configuration file of a fleet run: defaults,
// servers (with their connection limit and admin login) and accounts
// (name, source URL, archive, where the secret comes from). docs/CONFIG.md
// documents every key; contrib/mailvault.toml is the commented example.
//
// Load parses and checks a file without touching the network or any
// secret: every problem is one *Error naming the file and the line
// (unknown keys, duplicate names, two accounts on one archive, an account
// with no way to log in, a file others may change). ResolveSecrets then
// reads the password files, environment variables and password commands
// (files must be readable by their owner only) and builds each account's
// login, again failing with the file and line of the key that named the
// missing secret. Both happen before anything connects.
//
// Secrets are never written in the file itself: a password, admin_password
// or oauth2_token key is refused with a message saying where to put it.
// A file that names a command (password_command, admin_password_command,
// oauth2_token_command) must be readable by its owner only, since a
// command line may carry a secret; a file others can write is always
// refused, since it says which commands run.
//
// The TOML is read with github.com/pelletier/go-toml/v2: its decoder
// rejects unknown fields with their position, and its parser gives the
// line of every table and key, which this package needs for the
// semantic checks (duplicate keys, names, archives) that a decoder alone
// reports without a line.
package config
