module github.com/nectarhooks/nectarhooks/cmd/nectarhooks

go 1.25.0

replace github.com/nectarhooks/nectarhooks => ../..

require (
	github.com/HdrHistogram/hdrhistogram-go v1.4.0
	github.com/nectarhooks/nectarhooks v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/nectarhooks/nectarhooks/pgxstore v0.0.0-00010101000000-000000000000
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/nectarhooks/nectarhooks/pgxstore => ../../pgxstore
