module github.com/nectarhooks/nectarhooks/cmd/nectarhooks

go 1.24

replace github.com/nectarhooks/nectarhooks => ../..

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	github.com/nectarhooks/nectarhooks v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
