import { z } from '@hono/zod-openapi';

export const RtoPredictionSchema = z
  .object({
    seconds: z
      .number()
      .describe('Predicted time from the start of a recovery to its last boot group recovered'),
    basedOnRuns: z.number().int().describe('How many past completed recoveries of the plan it rests on'),
    planPreScriptSeconds: z.number(),
    orchestrationSeconds: z.number().describe('Validation and group transitions, as observed'),
    perGroup: z.array(
      z.object({
        group: z.number().int(),
        bootOrder: z.number().int(),
        vms: z.array(z.string()),
        recoverSeconds: z
          .number()
          .describe("The slowest VM's pre-script + boot to running and healthy + post-script"),
        delaySeconds: z.number().describe('The configured boot delay after the group (0 for the last)'),
        seconds: z.number(),
        matchedBy: z.enum(['instance-type-and-os', 'all-vms']),
        samples: z.number().int(),
      }),
    ),
    objectiveSeconds: z
      .number()
      .nullable()
      .describe('The plan’s RTO objective (objectives.rtoMinutes) in seconds; null when it sets none'),
    exceedsObjective: z
      .boolean()
      .nullable()
      .describe('The prediction is above the RTO objective; null without an objective'),
  })
  .openapi('RtoPrediction');
export type RtoPredictionOut = z.infer<typeof RtoPredictionSchema>;

/** The loader lives with the read models: reports (activities) show it too. */
export { planRtoPrediction } from '../../../schema/read/rto';
