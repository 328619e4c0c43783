// Package ec2api is the protocol layer of fairlease's EC2 Query API: SigV4
// verification written for the server, Query parameter parsing, EC2 error
// documents, response types with EC2's element names, and an http.Handler
// that dispatches on Action.
//
// Actions are registered by name and see only the verified caller and the
// parameters:
//
//	s := ec2api.New(cfg)
//	s.Handle("RunInstances", func(ctx context.Context, c ec2api.Caller, p *ec2api.Params) (any, *ec2api.Error) {
//		ids, e := p.List("InstanceId")
//		...
//		return &ec2api.RunInstancesResponse{...}, nil
//	})
//
// A response is a pointer to a struct that embeds Meta, which gets the
// request ID. Errors are *Error values built by the constructors named after
// EC2's codes; their HTTP status is part of the contract (clients retry 500
// and 503), so anything a client can cause is a 4xx and InternalError is
// for bugs only.
package ec2api
