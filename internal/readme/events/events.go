// Package events stands in for github.com/aws/aws-lambda-go/events in the
// README's AWS Lambda sketch, which the core module cannot depend on: it
// declares the fields of the two types that the sketch uses, with the
// names, types and meaning they have there, so that the sketch compiles.
package events

// LambdaFunctionURLRequest is the part of aws-lambda-go's request of an AWS
// Lambda function URL that the README's sketch reads.
type LambdaFunctionURLRequest struct {
	// Headers are the request's headers, one value per name, names in
	// lower case.
	Headers map[string]string
	// Body is the request body, base64-encoded when IsBase64Encoded is set.
	Body string
	// IsBase64Encoded reports whether Body is base64-encoded.
	IsBase64Encoded bool
}

// LambdaFunctionURLResponse is the part of aws-lambda-go's response to an
// AWS Lambda function URL that the README's sketch sets.
type LambdaFunctionURLResponse struct {
	// StatusCode is the HTTP status to answer with.
	StatusCode int
}
