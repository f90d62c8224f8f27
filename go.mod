module github.com/mailvault/mailvault

go 1.26.0

require (
	github.com/emersion/go-imap/v2 v2.0.0-beta.9
	github.com/emersion/go-message v0.18.2
	github.com/emersion/go-sasl v0.0.0-20241020182733-b788ff22d5a6
	github.com/klauspost/compress v1.20.3
	github.com/migadu/go-pop3 v0.1.4
	github.com/urfave/cli/v2 v2.27.7
	golang.org/x/oauth2 v0.38.0
	golang.org/x/sys v0.38.0
	golang.org/x/term v0.37.0
	golang.org/x/text v0.14.0
)

require (
	github.com/cpuguy83/go-md2man/v2 v2.0.7 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
	github.com/xrash/smetrics v0.0.0-20240521201337-686a1a2994c1 // indirect
)

replace github.com/emersion/go-imap/v2 => ./third_party/go-imap
