module github.com/nectarhooks/nectarhooks

go 1.24

require (
	github.com/stretchr/testify v1.12.1
	github.com/svix/svix-webhooks v1.90.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
