module github.com/nectarhooks/nectarhooks

go 1.24

require (
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/svix/svix-webhooks v1.90.0 // indirect
)
