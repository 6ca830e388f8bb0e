// The API's bodies, as tactful's /openapi.json defines them (schema.d.ts is generated from it).
import type { components } from "./schema";

type S = components["schemas"];
export type Agent = S["AgentDTO"];
export type Customer = S["CustomerDTO"];
export type Tag = S["TagDTO"];
export type Session = S["SessionDTO"];
export type SessionListing = S["SessionListing"];
export type Event = S["EventDTO"];
export type EventKind = S["EventKind"];
export type EventSource = S["EventSource"];
export type Trace = S["Trace"];
export type Candidate = S["Candidate"];
export type MatchVerdict = S["MatchVerdict"];
export type ResolutionStep = S["ResolutionStep"];
export type ModelCall = S["ModelCall"];
export type JourneyStep = S["JourneyStep"];
export type Guideline = S["GuidelineDTO"];
export type GuidelineDetail = S["GuidelineWithRelationshipsAndToolAssociations"];
export type Relationship = S["RelationshipDTO"];
export type Journey = S["JourneyDTO"];
export type JourneyGraph = S["GraphDTO"];
export type JourneyState = S["JourneyState"];
export type JourneyTransition = S["JourneyTransition"];
export type JourneyRun = S["JourneyRunDTO"];
export type CannedResponse = S["CannedResponseDTO"];
export type Term = S["TermDTO"];
export type ContextVariable = S["ContextVariableDTO"];
export type Service = S["ServiceDTO"];

export type Flag = S["Flag"];
